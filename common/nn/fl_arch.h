/* fl_arch: plain descriptions of a model's architecture and of an adapter's configuration.
 * These are what the base and adapter files record (fl_modelfile) and what the engine
 * (fl_model) builds from; they hold no tensors. */
#ifndef FL_ARCH_H
#define FL_ARCH_H

#include "fl_sizes.h"

#include <stdbool.h>
#include <stdint.h>

#define FL_ARCH_MAX_LAYERS 16
#define FL_LAYER_NAME_MAX  32
#define FL_MAX_CLASSES     256
#define FL_LABEL_NAME_MAX  64 /* bytes of a class name, NUL included */
/* An adapter's targets: layers of a chain or nodes of a graph, named in FL_TARGET_NAME_MAX
 * bytes (NUL included; a graph node's name fits: FL_GRAPH_NAME_MAX), listed by users in a
 * comma list of at most FL_TARGET_LIST_MAX bytes. */
#define FL_MAX_TARGETS     64
#define FL_TARGET_NAME_MAX 64
#define FL_TARGET_LIST_MAX (FL_MAX_TARGETS * FL_TARGET_NAME_MAX)

struct fl_graphdef; /* fl_graphdef.h */

enum fl_layer_kind {
    FL_LAYER_CONV2D = 1, /* k x k convolution, stride, zero padding; weight [out,k,k,in] */
    FL_LAYER_RELU = 2,
    FL_LAYER_MAXPOOL = 3, /* k x k window, stride */
    FL_LAYER_FLATTEN = 4, /* NHWC -> [batch, h*w*c] */
    FL_LAYER_DENSE = 5    /* weight [out, in] */
};

struct fl_layer_spec {
    enum fl_layer_kind kind;      /* what the layer computes */
    char name[FL_LAYER_NAME_MAX]; /* unique within the model, e.g. "conv1", "fc2" */
    int32_t in_ch, out_ch;        /* conv2d channels */
    int32_t kernel, stride, pad;  /* conv2d and maxpool geometry */
    int32_t in_features;          /* dense input width */
    int32_t out_features;         /* dense output width */
};

/* A chain (layers in order) or, when graph is set, a graph network: then nlayers is 0 and
 * the input geometry is the graph input's {C, H, W} ({C, H} or {features}: the rest 1). */
struct fl_arch {
    char name[FL_LAYER_NAME_MAX]; /* "cnn-small", "mlp", or a graph model's name */
    int32_t in_h, in_w, in_c;     /* input geometry (mlp: 1 x 1 x features) */
    int32_t num_classes;          /* width of the last dense layer (the base's head) */
    int32_t nlayers;              /* layers used */
    struct fl_layer_spec layers[FL_ARCH_MAX_LAYERS]; /* in execution order */
    const struct fl_graphdef *graph;                 /* the graph (borrowed); NULL: a chain */
};

/* What a base model was trained on. */
struct fl_base_meta {
    char data_desc[256];               /* free text: data set, classes, sizes */
    int64_t created_unix;              /* creation time, seconds since the epoch */
    int32_t nclasses;                  /* number of classes the base predicts */
    int32_t class_ids[FL_MAX_CLASSES]; /* original label of each output class */
    int32_t image_resize;              /* images: shorter side resized to this first (0: not) */
    int32_t image_crop;                /* images: centre crop side recorded (0: none) */
    float pixel_max;                   /* images: feature of a white pixel, 1 or 255 (0: 255) */
    int32_t nlabel_names;              /* entries of label_names (0: names unknown) */
    char label_names[FL_MAX_CLASSES][FL_LABEL_NAME_MAX]; /* name of original label i */
};

enum fl_adapter_kind {
    FL_ADAPTER_HEAD = 1,     /* only a new classification head */
    FL_ADAPTER_LORA = 2,     /* LoRA (A and B trained) on targets + new head */
    FL_ADAPTER_FFA_LORA = 3, /* LoRA with A frozen from `seed`, only B trained + new head */
    FL_ADAPTER_BITFIT = 4    /* biases of targets trained + new head */
};

struct fl_adapter_meta {
    enum fl_adapter_kind kind;                        /* adapter method */
    int32_t rank;                                     /* LoRA rank (0 otherwise) */
    float alpha;                                      /* LoRA scale: dW = alpha/rank B A */
    uint64_t seed;                                    /* initialisation seed (FFA-LoRA's A) */
    int32_t ntargets;                                 /* layers or nodes with LoRA / BitFit */
    char targets[FL_MAX_TARGETS][FL_TARGET_NAME_MAX]; /* their names */
    int32_t num_classes;                              /* width of the new head */
    int32_t class_ids[FL_MAX_CLASSES];                /* original label of each head output */
    uint8_t base_hash[FL_HASH_BYTES];                 /* content hash of the base it fits */
    int64_t created_unix;                             /* creation time */
    uint32_t round;                                   /* federation round (0 = local) */
};

/* Method names as users type them: "head", "lora", "ffa-lora", "bitfit". */
const char *fl_adapter_kind_name(enum fl_adapter_kind kind);
/* Parse a method name; returns 0 or FL_EINVAL. */
int fl_adapter_kind_parse(const char *name, enum fl_adapter_kind *kind);
/* Index of the layer called `name`, or -1. */
int fl_arch_find(const struct fl_arch *arch, const char *name);

/* Built-in chain architectures: "cnn-small" (28x28x1 input, in_dim must be 784) and "mlp"
 * (in_dim -> 256 -> 128 -> classes), as chain bases on disk record them; new bases are their
 * graph forms (fl_zoo.h). Returns 0 or FL_EINVAL with a message. */
int fl_arch_builtin(const char *name, int in_dim, int classes, struct fl_arch *out);
/* Default LoRA targets of a chain architecture (comma list) for a method: the layers whose
 * adaptation pays most per parameter (a graph's: fl_graphadapt_default_targets). */
const char *fl_arch_default_targets(const struct fl_arch *arch, enum fl_adapter_kind kind);

/* Default LoRA rank and Adam learning rate of a method (FFA-LoRA trains only B, so it gets a
 * higher rank and rate; a head or biases alone learn fastest with a large rate). */
void fl_adapter_defaults(enum fl_adapter_kind kind, int *rank, float *lr);

#endif
