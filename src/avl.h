/*
 * Intrusive AVL trees with parent pointers and an optional augmentation.
 *
 * The caller embeds a vmem_avl_node_t in its structure and does its own key
 * comparisons while descending (so comparisons inline); this module only
 * links, unlinks and rebalances.  The balance factor (-1, 0, +1, stored + 1)
 * lives in the two low bits of the parent pointer, so a node is three words.
 *
 * Augmentation: when a tree has an at_augment callback, the callback is run
 * on every node whose subtree changed, children before parents, so a value
 * computed from a node and its two children (such as "largest free segment
 * below here") is always exact.  Nothing here takes locks; the owner of the
 * tree serializes access.
 */
#ifndef VMEM_AVL_H
#define VMEM_AVL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct vmem_avl_node {
	struct vmem_avl_node *an_child[2]; /* [0] left (smaller), [1] right */
	uintptr_t an_pb;                   /* parent pointer | (balance + 1) */
} vmem_avl_node_t;

/*
 * Recompute a node's augmented value from itself and its children; return
 * whether it changed (so that updates can stop climbing early).
 */
typedef bool vmem_avl_augment_t(vmem_avl_node_t *node);

typedef struct vmem_avl_tree {
	vmem_avl_node_t *at_root;
	vmem_avl_augment_t *at_augment; /* NULL: not augmented */
	size_t at_count;
} vmem_avl_tree_t;

static inline vmem_avl_node_t *vmem__avl_parent(const vmem_avl_node_t *n)
{
	return (vmem_avl_node_t *)(n->an_pb & ~(uintptr_t)3);
}

static inline vmem_avl_node_t *vmem__avl_left(const vmem_avl_node_t *n)
{
	return n->an_child[0];
}

static inline vmem_avl_node_t *vmem__avl_right(const vmem_avl_node_t *n)
{
	return n->an_child[1];
}

void vmem__avl_init(vmem_avl_tree_t *t, vmem_avl_augment_t *augment);

/*
 * Link `node` as child `dir` (0 left, 1 right) of `parent` (NULL: the tree
 * is empty and node becomes the root), then rebalance.  The caller found the
 * spot by descending from the root with its own comparisons.
 */
void vmem__avl_insert_at(vmem_avl_tree_t *t, vmem_avl_node_t *parent, int dir,
                         vmem_avl_node_t *node);
void vmem__avl_remove(vmem_avl_tree_t *t, vmem_avl_node_t *node);

/*
 * The node's own augmented inputs changed (its key moved without changing
 * its order, or its size changed): recompute up to the root, stopping early
 * when `augment_changed` reports that a value did not change.
 */
void vmem__avl_update(vmem_avl_tree_t *t, vmem_avl_node_t *node);

vmem_avl_node_t *vmem__avl_first(const vmem_avl_tree_t *t);
vmem_avl_node_t *vmem__avl_last(const vmem_avl_tree_t *t);
vmem_avl_node_t *vmem__avl_next(const vmem_avl_node_t *n);
vmem_avl_node_t *vmem__avl_prev(const vmem_avl_node_t *n);

/* Check every invariant (order via `cmp`, balance, parents); for tests. */
bool vmem__avl_verify(const vmem_avl_tree_t *t,
                      int (*cmp)(const vmem_avl_node_t *, const vmem_avl_node_t *));

#endif /* VMEM_AVL_H */
