/*
 * The augmented AVL tree against a reference: random inserts, removals and
 * in-place updates, with every invariant (order, balance, parent links,
 * augmentation) checked after each step.
 */
#include "testutil.h"

#include "avl.h"

typedef struct item {
	uint64_t key;
	uint64_t val;
	uint64_t maxval; /* max of val over the subtree */
	vmem_avl_node_t node;
	int in;
} item_t;

#define ITEM(n) VMEM_CONTAINER(n, item_t, node)

static uint64_t maxv(vmem_avl_node_t *n)
{
	return n ? ITEM(n)->maxval : 0;
}

static bool aug_changed(vmem_avl_node_t *n)
{
	uint64_t m = ITEM(n)->val;

	if (maxv(n->an_child[0]) > m)
		m = maxv(n->an_child[0]);
	if (maxv(n->an_child[1]) > m)
		m = maxv(n->an_child[1]);
	if (m == ITEM(n)->maxval)
		return false;
	ITEM(n)->maxval = m;
	return true;
}

static int cmp(const vmem_avl_node_t *a, const vmem_avl_node_t *b)
{
	return ITEM(a)->key < ITEM(b)->key ? -1 : ITEM(a)->key > ITEM(b)->key;
}

static void insert(vmem_avl_tree_t *t, item_t *it)
{
	vmem_avl_node_t *p = NULL, *c = t->at_root;
	int dir = 0;

	while (c) {
		p = c;
		dir = it->key > ITEM(c)->key;
		c = c->an_child[dir];
	}
	it->maxval = it->val;
	vmem__avl_insert_at(t, p, dir, &it->node);
	it->in = 1;
}

/* Check the augmentation of every node against a recomputation. */
static void check_aug(vmem_avl_node_t *n)
{
	uint64_t m;

	if (!n)
		return;
	check_aug(n->an_child[0]);
	check_aug(n->an_child[1]);
	m = ITEM(n)->val;
	if (maxv(n->an_child[0]) > m)
		m = maxv(n->an_child[0]);
	if (maxv(n->an_child[1]) > m)
		m = maxv(n->an_child[1]);
	assert_int_equal(m, ITEM(n)->maxval);
}

static void test_random_ops(void **state)
{
	enum { N = 2000, OPS = 60000 };
	static item_t items[N];
	vmem_avl_tree_t t;
	size_t count = 0;
	int op;

	(void)state;
	srandom(12345);
	vmem__avl_init(&t, aug_changed);
	for (int i = 0; i < N; i++) {
		items[i].key = (uint64_t)i * 7 + 3; /* distinct keys */
		items[i].in = 0;
	}
	for (op = 0; op < OPS; op++) {
		item_t *it = &items[random() % N];
		int what = random() % 3;

		if (!it->in && what != 2) {
			it->val = (uint64_t)random() % 100000;
			insert(&t, it);
			count++;
		} else if (it->in && what == 0) {
			vmem__avl_remove(&t, &it->node);
			it->in = 0;
			count--;
		} else if (it->in) {
			it->val = (uint64_t)random() % 100000;
			vmem__avl_update(&t, &it->node);
		}
		if (op % 97 == 0 || op < 200) {
			assert_true(vmem__avl_verify(&t, cmp));
			check_aug(t.at_root);
		}
		assert_int_equal(t.at_count, count);
	}
	/* In-order iteration visits exactly the members, ascending. */
	{
		size_t seen = 0;
		vmem_avl_node_t *n;
		uint64_t prev = 0;

		for (n = vmem__avl_first(&t); n; n = vmem__avl_next(n)) {
			assert_true(seen == 0 || ITEM(n)->key > prev);
			prev = ITEM(n)->key;
			seen++;
		}
		assert_int_equal(seen, count);
		seen = 0;
		for (n = vmem__avl_last(&t); n; n = vmem__avl_prev(n))
			seen++;
		assert_int_equal(seen, count);
	}
	/* Drain. */
	for (int i = 0; i < N; i++) {
		if (items[i].in) {
			vmem__avl_remove(&t, &items[i].node);
			assert_true(vmem__avl_verify(&t, cmp));
		}
	}
	assert_null(t.at_root);
}

static void test_sequential(void **state)
{
	enum { N = 4096 };
	static item_t items[N];
	vmem_avl_tree_t t;

	(void)state;
	vmem__avl_init(&t, NULL);
	for (int i = 0; i < N; i++) {
		items[i].key = (uint64_t)i;
		insert(&t, &items[i]);
	}
	assert_true(vmem__avl_verify(&t, cmp));
	/* A balanced tree of 4096 nodes: the leftmost path is short. */
	{
		int depth = 0;
		vmem_avl_node_t *n = t.at_root;

		while (n) {
			n = n->an_child[0];
			depth++;
		}
		assert_true(depth <= 18);
	}
	for (int i = N - 1; i >= 0; i -= 2)
		vmem__avl_remove(&t, &items[i].node);
	assert_true(vmem__avl_verify(&t, cmp));
	assert_int_equal(t.at_count, N / 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_random_ops),
	    cmocka_unit_test(test_sequential),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
