/* fl_zoo: built-in graph architectures as an fl_graphdef plus freshly initialised parameters:
 * fedtl's own cnn-small (1x28x28 images) and mlp (any number of features, a flat input), with
 * the topology, layer names and initialisation of the chain architectures (fl_arch_builtin),
 * and torchvision's resnet18 and mobilenet_v2 for any input CxHxW. In the latter BatchNorm is
 * folded away, as an eval-mode export gives: every Conv has a bias.
 * Nodes, values and parameters are named after torchvision's modules ("layer4.1.conv2",
 * "layer4.1.conv2.weight" / ".bias", "features.17.conv.2", "classifier.1.weight"), so that
 * LoRA targets and imported weights line up with what PyTorch users know. */
#ifndef FL_ZOO_H
#define FL_ZOO_H

#include "fl_graphdef.h"
#include "fl_tensor.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Is name a built-in graph architecture ("cnn-small", "mlp", "resnet18", "mobilenet_v2")? */
bool fl_zoo_known(const char *name);
/* Names of the built-in architectures, NULL-terminated. */
const char *const *fl_zoo_names(void);

/* Build architecture `name` for inputs c x h x w and `classes` outputs: *def receives the
 * description (input "input", output "logits"; free with fl_graphdef_free) and *params an
 * array of *n owned tensors (free with fl_zoo_free_params): convolutions He-normal (fan in),
 * biases zero, the classifier uniform +-1/sqrt(in) as torch.nn.Linear, all from seed (cnn-small
 * and mlp: every weight He-normal, biases zero, as a fresh chain). mlp reads c*h*w features
 * (its input has one axis). Returns 0 or an FL_E* code with a message (unknown name, input
 * too small, cnn-small on anything but 1x28x28). */
int fl_zoo_build(const char *name, int c, int h, int w, int classes, uint64_t seed,
                 struct fl_graphdef *def, struct fl_tensor **params, size_t *n);

/* Free params[0..n) and the array; accepts NULL. */
void fl_zoo_free_params(struct fl_tensor *params, size_t n);

#endif
