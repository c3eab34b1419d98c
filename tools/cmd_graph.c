/* fedtl inspect on a graph base: the nodes an adapter can target (Conv, Gemm, MatMul), with
 * their op, weight shape, parameters and which methods apply; the head is what every method
 * replaces. */
#include "fedtl.h"
#include "fl_graphadapt.h"
#include "fl_modelfile.h"

#include <cJSON.h>
#include <stdio.h>
#include <string.h>

static void s_shape(const struct fl_gadapt_node *x, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < x->wndim && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%lld", i ? "x" : "",
                                 (long long)x->wshape[i]);
}

void tool_graph_print(const struct fl_base_file *bf)
{
    const struct fl_graphdef *d = bf->graph;
    int head = fl_graphadapt_head(d), w = 4; /* the node column fits the longest name */
    for (int i = 0; i < d->nnodes; i++)
        if (fl_graphadapt_is_linear(d, i) && (int)strlen(d->nodes[i].name) > w)
            w = (int)strlen(d->nodes[i].name);
    printf("graph       %d nodes, input '%s', output '%s'\n"
           "nodes an adapter can target (--targets NODE,...):\n"
           "  %-*s %-7s %-12s %10s  %-16s %s\n",
           d->nnodes, d->input, d->output, w, "node", "op", "weight", "params", "lora", "bitfit");
    for (int i = 0; i < d->nnodes; i++) {
        struct fl_gadapt_node x;
        if (!fl_graphadapt_is_linear(d, i) ||
            fl_graphadapt_node(d, bf->tensors, bf->ntensors, i, &x) != 0)
            continue;
        char shape[64];
        s_shape(&x, shape, sizeof shape);
        printf("  %-*s %-7s %-12s %10zu  %-16s %s\n", w, d->nodes[i].name,
               fl_op_name(d->nodes[i].op), shape, x.params,
               i == head ? "head (replaced)"
               : x.lora  ? "yes"
                         : "no (depthwise)",
               i == head ? "-" : "yes");
    }
    static const enum fl_adapter_kind kinds[] = {FL_ADAPTER_LORA, FL_ADAPTER_BITFIT};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        struct fl_method mp;
        if (fl_method_resolve(&bf->arch, kinds[k], NULL, &mp) != 0)
            continue;
        printf("default targets of %s:", fl_adapter_kind_name(kinds[k]));
        for (int i = 0; i < mp.ntargets; i++)
            printf("%s%s", i ? "," : " ", mp.targets[i]);
        printf("\n");
    }
}

int tool_graph_json(const struct fl_base_file *bf, cJSON *o)
{
    const struct fl_graphdef *d = bf->graph;
    int head = fl_graphadapt_head(d);
    cJSON_AddNumberToObject(o, "graph_nodes", d->nnodes);
    cJSON *nodes = cJSON_AddArrayToObject(o, "nodes");
    for (int i = 0; nodes && i < d->nnodes; i++) {
        struct fl_gadapt_node x;
        if (!fl_graphadapt_is_linear(d, i) ||
            fl_graphadapt_node(d, bf->tensors, bf->ntensors, i, &x) != 0)
            continue;
        cJSON *n = cJSON_CreateObject(), *shape = cJSON_CreateArray();
        if (!n || !shape || !cJSON_AddItemToArray(nodes, n) ||
            !cJSON_AddItemToObject(n, "weight", shape)) {
            cJSON_Delete(n);
            cJSON_Delete(shape);
            return 1;
        }
        cJSON_AddStringToObject(n, "name", d->nodes[i].name);
        cJSON_AddStringToObject(n, "op", fl_op_name(d->nodes[i].op));
        for (int k = 0; k < x.wndim; k++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)x.wshape[k]));
        cJSON_AddNumberToObject(n, "parameters", (double)x.params);
        cJSON_AddBoolToObject(n, "head", i == head);
        cJSON_AddBoolToObject(n, "lora", i != head && x.lora);
        cJSON_AddBoolToObject(n, "bitfit", i != head);
    }
    return nodes ? 0 : 1;
}
