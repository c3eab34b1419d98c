/* fl_linalg: cblas_sgemm behind a small interface, kept single-threaded. */
#include "fl_linalg.h"

#include <cblas.h>
#include <pthread.h>

void fl_gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a, int lda,
             const float *b, int ldb, float beta, float *c, int ldc)
{
    if (n == 1) { /* a matrix times a vector: sgemv reads A once, sgemm would pack it first */
        for (int i = 0; beta == 0.0f && i < m; i++)
            c[(size_t)i * ldc] = 0.0f; /* beta 0 ignores C, even a NaN in it */
        cblas_sgemv(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_a ? k : m,
                    trans_a ? m : k, alpha, a, lda, b, trans_b ? 1 : ldb, beta, c, ldc);
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void fl_gemm_ref(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
                 int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
            double acc = 0;
            for (int p = 0; p < k; p++) {
                float av = trans_a ? a[p * lda + i] : a[i * lda + p];
                float bv = trans_b ? b[j * ldb + p] : b[p * ldb + j];
                acc += (double)av * bv;
            }
            float prev = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
            c[i * ldc + j] = alpha * (float)acc + prev;
        }
    }
}

void fl_colsum(int m, int n, float alpha, const float *a, float *y)
{
    /* Row-wise accumulation: contiguous, vectorised by the compiler, O(m n). */
    for (int i = 0; i < m; i++) {
        const float *row = a + (size_t)i * n;
        for (int j = 0; j < n; j++)
            y[j] += alpha * row[j];
    }
}

static pthread_once_t s_blas_once = PTHREAD_ONCE_INIT;

static void s_blas_serial(void)
{
    openblas_set_num_threads(1);
}

void fl_linalg_init(void)
{
    pthread_once(&s_blas_once, s_blas_serial);
}
