/* fl_linalg: the one door to matrix arithmetic. Every product in fedtl goes through
 * fl_gemm (OpenBLAS cblas_sgemm underneath); fl_gemm_ref is a naive reference kept only
 * so tests can check the fast path. Matrices are row-major. */
#ifndef FL_LINALG_H
#define FL_LINALG_H

#include <stdbool.h>

/* C = alpha * op(A) * op(B) + beta * C, op(X) = X or X^T; op(A) is m x k, op(B) k x n. */
void fl_gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a, int lda,
             const float *b, int ldb, float beta, float *c, int ldc);
/* The same product with plain loops (tests only). */
void fl_gemm_ref(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
                 int lda, const float *b, int ldb, float beta, float *c, int ldc);
/* y[j] += alpha * sum_i A[i][j] over the m rows of the m x n matrix A (bias gradients). */
void fl_colsum(int m, int n, float alpha, const float *a, float *y);

/* Put OpenBLAS in single-threaded mode (idempotent; models call it when built). Small GEMMs do
 * not scale across threads, so the engine splits each batch over the workers of the pool its
 * model was given (fl_pool) and keeps every BLAS call single-threaded inside them. */
void fl_linalg_init(void);

#endif
