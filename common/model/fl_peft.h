/* fl_peft: a LoRA adapter on a graph network written as Hugging Face PEFT saves one, so that
 * PyTorch users load it onto the same base (PeftModel.from_pretrained): a directory with
 * adapter_model.safetensors (the LoRA tensors alone) and adapter_config.json.
 *
 * Names. Each target node's PyTorch module name is its weight initializer's name minus
 * ".weight" when the name ends so ("layer1.0.conv1.weight" -> "layer1.0.conv1"), else the node
 * name with '/' turned into '.' and the dots at either end trimmed ("/fc/Gemm" -> "fc.Gemm").
 * Its tensors are "base_model.model.<module>.lora_A.weight" and "...lora_B.weight".
 *
 * Shapes (fedtl's "N.lora_A" [rank, cols] and "N.lora_B" [rows, rank], fl_graph_merge.h):
 *   Gemm with transB (W [out, in], PyTorch's Linear): lora_A [r, in], lora_B [out, r] as they are.
 *   MatMul, Gemm without transB (W [in, out]): PEFT's delta is the transpose of fedtl's, so
 *     lora_A [r, in] is fedtl's B transposed and lora_B [out, r] fedtl's A transposed.
 *   Conv (W [out, in, kh, kw], group 1 only: PEFT has no grouped LoRA): lora_A is a conv
 *     [r, in, kh, kw] (fedtl's A, same values) and lora_B a 1x1 conv [out, r, 1, 1].
 * The scale is the same (lora_alpha / r). A new head is not written (PEFT would keep it in
 * modules_to_save, under the base's own head name); merge it (fl_graph_merge_adapter) or
 * export ONNX for a model with its head. */
#ifndef FL_PEFT_H
#define FL_PEFT_H

#include "fl_arch.h"
#include "fl_graphdef.h"
#include "fl_tensor.h"

#include <stddef.h>

#define FL_PEFT_WEIGHTS "adapter_model.safetensors"
#define FL_PEFT_CONFIG  "adapter_config.json"

/* The PyTorch module name of node `node` of def (rule above) into out[len]. 0 or FL_ERANGE. */
int fl_peft_module_name(const struct fl_graphdef *def, int node, char *out, size_t len);

/* Write the LoRA adapter (meta of kind LoRA or FFA-LoRA, its tensors adapter[0..n)) on def's
 * target nodes (whose weights are among base[0..nbase): a Conv's kernel comes from its weight)
 * into directory dir (created if missing): FL_PEFT_WEIGHTS and FL_PEFT_CONFIG,
 * each atomically, mode 0644. base_model names the base for base_model_name_or_path (NULL:
 * null). Tensors other than the targets' LoRA ones (a head) are left out. 0, or FL_EINVAL (not
 * LoRA, a grouped Conv, a target of another op), FL_EMISMATCH (a tensor missing or of the wrong
 * shape), FL_EIO, FL_ENOMEM. */
int fl_peft_export(const char *dir, const struct fl_graphdef *def, const struct fl_tensor *base,
                   size_t nbase, const struct fl_adapter_meta *meta,
                   const struct fl_tensor *adapter, size_t n, const char *base_model);

#endif
