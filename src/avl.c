/*
 * Intrusive AVL trees with parent pointers; see avl.h.
 *
 * Balance factor convention: b(n) = height(right) - height(left), kept in
 * {-1, 0, +1}.  Rotations take the side of the child that moves up; after
 * every structural change the augmentation callback (if any) is applied to
 * the rotated nodes, lower first, and then along the path from the deepest
 * changed node to the root, so every node whose subtree changed is
 * recomputed after its children.
 */
#include "avl.h"

/* The subtree root left by the last rotation of the current operation. */
static __thread vmem_avl_node_t *rot_top;

static inline int bal(const vmem_avl_node_t *n)
{
	return (int)(n->an_pb & 3) - 1;
}

static inline void set_bal(vmem_avl_node_t *n, int b)
{
	n->an_pb = (n->an_pb & ~(uintptr_t)3) | (uintptr_t)(b + 1);
}

static inline void set_parent(vmem_avl_node_t *n, vmem_avl_node_t *p)
{
	n->an_pb = (uintptr_t)p | (n->an_pb & 3);
}

static inline int side_of(const vmem_avl_node_t *p, const vmem_avl_node_t *c)
{
	return p->an_child[1] == c;
}

void vmem__avl_init(vmem_avl_tree_t *t, vmem_avl_augment_t *augment)
{
	t->at_root = NULL;
	t->at_augment = augment;
	t->at_count = 0;
}

/* Put `newc` where `old` hangs below `parent` (or at the root). */
static void replace_child(vmem_avl_tree_t *t, vmem_avl_node_t *parent, vmem_avl_node_t *old,
                          vmem_avl_node_t *newc)
{
	if (parent == NULL)
		t->at_root = newc;
	else
		parent->an_child[side_of(parent, old)] = newc;
}

/*
 * Rotate at x: its child on side d moves up and x becomes that child's
 * child on the other side.  Balance factors are the caller's business.
 */
static void rotate(vmem_avl_tree_t *t, vmem_avl_node_t *x, int d)
{
	vmem_avl_node_t *c = x->an_child[d];
	vmem_avl_node_t *inner = c->an_child[!d];
	vmem_avl_node_t *xp = vmem__avl_parent(x);

	x->an_child[d] = inner;
	if (inner != NULL)
		set_parent(inner, x);
	c->an_child[!d] = x;
	set_parent(c, xp);
	replace_child(t, xp, x, c);
	set_parent(x, c);
	if (t->at_augment != NULL) {
		t->at_augment(x);
		t->at_augment(c);
	}
	rot_top = c;
}

/*
 * Double rotation at p, heavy on side d, where the child x = p->child[d]
 * leans the other way: its inner grandchild g ends on top.  Sets the three
 * balance factors from g's old one; returns g.
 */
static vmem_avl_node_t *rotate_double(vmem_avl_tree_t *t, vmem_avl_node_t *p, int d)
{
	vmem_avl_node_t *x = p->an_child[d];
	vmem_avl_node_t *g = x->an_child[!d];
	int s = d ? 1 : -1;
	int bg = bal(g);

	rotate(t, x, !d);
	rotate(t, p, d);
	set_bal(p, bg == s ? -s : 0);
	set_bal(x, bg == -s ? s : 0);
	set_bal(g, 0);
	return g;
}

/*
 * Recompute n and its ancestors.  Every node up to the last rotation and up
 * to `must` (a node that moved, or NULL), and their parents, is recomputed;
 * strictly above both, a node whose value did not change leaves its
 * ancestors' inputs unchanged, so the climb stops there.
 */
static void augment_up(vmem_avl_tree_t *t, vmem_avl_node_t *n, const vmem_avl_node_t *must)
{
	bool passed_rot = rot_top == NULL, passed_must = must == NULL;

	if (t->at_augment == NULL)
		return;
	for (; n != NULL; n = vmem__avl_parent(n)) {
		bool changed = t->at_augment(n);

		/* The rotated and moved nodes changed whatever they say: their
		 * new values were set before this walk, so judge from their parents. */
		if (passed_rot && passed_must && !changed)
			break;
		if (n == rot_top)
			passed_rot = true;
		if (n == must)
			passed_must = true;
	}
}

void vmem__avl_insert_at(vmem_avl_tree_t *t, vmem_avl_node_t *parent, int dir,
                         vmem_avl_node_t *node)
{
	vmem_avl_node_t *x = node, *p;

	rot_top = NULL;
	node->an_child[0] = node->an_child[1] = NULL;
	node->an_pb = (uintptr_t)parent | 1;
	if (parent == NULL)
		t->at_root = node;
	else
		parent->an_child[dir] = node;
	t->at_count++;

	/* Retrace: x's subtree just grew by one level. */
	while ((p = vmem__avl_parent(x)) != NULL) {
		int d = side_of(p, x);
		int s = d ? 1 : -1;
		int b = bal(p) + s;

		if (b == 0) {
			set_bal(p, 0);
			break;
		}
		if (b == s) {
			set_bal(p, b);
			x = p;
			continue;
		}
		/* p is now 2 deep on side d, and x is that heavy child. */
		if (bal(x) == s) {
			rotate(t, p, d);
			set_bal(p, 0);
			set_bal(x, 0);
		} else {
			(void)rotate_double(t, p, d);
		}
		break;
	}
	if (t->at_augment != NULL) {
		(void)t->at_augment(node); /* its own value, then what contains it */
		augment_up(t, vmem__avl_parent(node), NULL);
	}
}

static vmem_avl_node_t *leftmost(vmem_avl_node_t *n)
{
	while (n->an_child[0] != NULL)
		n = n->an_child[0];
	return n;
}

static vmem_avl_node_t *rightmost(vmem_avl_node_t *n)
{
	while (n->an_child[1] != NULL)
		n = n->an_child[1];
	return n;
}

/* Rebalance upward after the subtree on side d of p lost one level. */
static void retrace_removal(vmem_avl_tree_t *t, vmem_avl_node_t *p, int d)
{
	while (p != NULL) {
		int b = bal(p) + (d ? -1 : 1);
		vmem_avl_node_t *top = p;

		if (b == 1 || b == -1) {
			set_bal(p, b);
			return; /* height of p's subtree unchanged */
		}
		if (b == 0) {
			set_bal(p, 0);
		} else {
			int h = b > 0; /* heavy side */
			int sh = h ? 1 : -1;
			vmem_avl_node_t *y = p->an_child[h];
			int by = bal(y);

			if (by == 0) {
				rotate(t, p, h);
				set_bal(p, sh);
				set_bal(y, -sh);
				return; /* height unchanged */
			}
			if (by == sh) {
				rotate(t, p, h);
				set_bal(p, 0);
				set_bal(y, 0);
				top = y;
			} else {
				top = rotate_double(t, p, h);
			}
		}
		/* top's subtree is one level shorter: continue with its parent. */
		p = vmem__avl_parent(top);
		if (p != NULL)
			d = side_of(p, top);
	}
}

void vmem__avl_remove(vmem_avl_tree_t *t, vmem_avl_node_t *n)
{
	vmem_avl_node_t *p, *child, *deepest;
	int d;

	rot_top = NULL;
	t->at_count--;
	if (n->an_child[0] != NULL && n->an_child[1] != NULL) {
		/* Put the in-order successor s in n's place, then retrace. */
		vmem_avl_node_t *s = leftmost(n->an_child[1]);
		vmem_avl_node_t *sp = vmem__avl_parent(s);

		if (sp == n) {
			p = s;
			d = 1;
		} else {
			vmem_avl_node_t *r = s->an_child[1];

			p = sp;
			d = 0;
			sp->an_child[0] = r;
			if (r != NULL)
				set_parent(r, sp);
			s->an_child[1] = n->an_child[1];
			set_parent(s->an_child[1], s);
		}
		s->an_child[0] = n->an_child[0];
		set_parent(s->an_child[0], s);
		s->an_pb = n->an_pb;
		replace_child(t, vmem__avl_parent(n), n, s);
		deepest = p;
		retrace_removal(t, p, d);
		augment_up(t, deepest, s); /* s took n's place: recompute up to it */
		return;
	}

	child = n->an_child[0] != NULL ? n->an_child[0] : n->an_child[1];
	p = vmem__avl_parent(n);
	d = p != NULL ? side_of(p, n) : 0;
	replace_child(t, p, n, child);
	if (child != NULL)
		set_parent(child, p);
	retrace_removal(t, p, d);
	augment_up(t, p, NULL);
}

void vmem__avl_update(vmem_avl_tree_t *t, vmem_avl_node_t *n)
{
	for (; n != NULL; n = vmem__avl_parent(n)) {
		if (!t->at_augment(n))
			break;
	}
}

vmem_avl_node_t *vmem__avl_first(const vmem_avl_tree_t *t)
{
	return t->at_root != NULL ? leftmost(t->at_root) : NULL;
}

vmem_avl_node_t *vmem__avl_last(const vmem_avl_tree_t *t)
{
	return t->at_root != NULL ? rightmost(t->at_root) : NULL;
}

static vmem_avl_node_t *step(const vmem_avl_node_t *n, int d)
{
	vmem_avl_node_t *p;

	if (n->an_child[d] != NULL)
		return d ? leftmost(n->an_child[1]) : rightmost(n->an_child[0]);
	while ((p = vmem__avl_parent(n)) != NULL && side_of(p, n) == d)
		n = p;
	return p;
}

vmem_avl_node_t *vmem__avl_next(const vmem_avl_node_t *n)
{
	return step(n, 1);
}

vmem_avl_node_t *vmem__avl_prev(const vmem_avl_node_t *n)
{
	return step(n, 0);
}

/* Height of n's subtree, or -1 if any invariant below n fails. */
static int verify_node(const vmem_avl_node_t *n, const vmem_avl_node_t *parent, size_t *count)
{
	int hl, hr;

	if (n == NULL)
		return 0;
	if (vmem__avl_parent(n) != parent || (n->an_pb & 3) == 3)
		return -1;
	(*count)++;
	hl = verify_node(n->an_child[0], n, count);
	hr = verify_node(n->an_child[1], n, count);
	if (hl < 0 || hr < 0 || hr - hl != bal(n))
		return -1;
	return 1 + (hl > hr ? hl : hr);
}

bool vmem__avl_verify(const vmem_avl_tree_t *t,
                      int (*cmp)(const vmem_avl_node_t *, const vmem_avl_node_t *))
{
	size_t count = 0;
	const vmem_avl_node_t *n, *prev = NULL;

	if (verify_node(t->at_root, NULL, &count) < 0 || count != t->at_count)
		return false;
	for (n = vmem__avl_first(t); n != NULL; prev = n, n = vmem__avl_next(n)) {
		if (prev != NULL && cmp != NULL && cmp(prev, n) >= 0)
			return false;
	}
	return true;
}
