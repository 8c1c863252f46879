/*
 * Internals shared by the debug layer's files (stack.c, log.c, audit.c,
 * report.c).  Nothing here is seen by the core, which only knows debug.h.
 */
#ifndef VMEM_DBG_IMPL_H
#define VMEM_DBG_IMPL_H

#include "debug.h"

#define VMEM_DBG_MAXDEPTH 64

/* ---- configuration (stack.c) ---- */
extern int vmem__dbg_depth; /* frames kept per stack */
void vmem__dbg_init(void);  /* idempotent; reads the environment */
uint64_t vmem__dbg_now(void);
uint64_t vmem__dbg_tid(void);

/* ---- stacks (stack.c) ---- */
/* Intern a stack; returns its id (0: none). */
uint32_t vmem__stack_intern(const uintptr_t *pcs, int depth);
/* The frames of stack id (NULL, 0 for id 0 or unknown). */
const uintptr_t *vmem__stack_get(uint32_t id, int *depthp);
/* The stack of the current API call (captured at entry), or capture now. */
uint32_t vmem__stack_current(void);

/* ---- transaction log (log.c) ---- */
enum {
	VMEM_TX_ALLOC = 1, /* vmem_alloc (arena segment) */
	VMEM_TX_XALLOC,    /* vmem_xalloc */
	VMEM_TX_FREE,      /* vmem_free */
	VMEM_TX_XFREE,     /* vmem_xfree */
	VMEM_TX_QALLOC,    /* quantum-cached object handed out */
	VMEM_TX_QFREE,     /* quantum-cached object given back */
	VMEM_TX_BADFREE    /* a refused free */
};

typedef struct vmem_txrec {
	uint64_t tx_seq; /* 1, 2, ...; 0: empty slot */
	uint64_t tx_time;
	uint64_t tx_addr;
	uint64_t tx_size;
	uint32_t tx_tid;
	uint32_t tx_arena;  /* arena id */
	uint32_t tx_stack;  /* this operation's stack */
	uint32_t tx_stack2; /* frees: the allocation's stack */
	uint8_t tx_op;      /* VMEM_TX_* */
	uint8_t tx_pad[7];
} vmem_txrec_t;

void vmem__log(uint8_t op, uint32_t arena, uintptr_t addr, size_t size, uint32_t stack,
               uint32_t stack2);
/* The newest record for (arena, addr), refused frees aside; false if none. */
bool vmem__log_last(uint32_t arena, uintptr_t addr, vmem_txrec_t *out);
/* The newest record for (arena, addr) older than before_seq whose op is in
 * opmask (bit 1 << VMEM_TX_*). */
bool vmem__log_find(uint32_t arena, uintptr_t addr, uint64_t before_seq, unsigned opmask,
                    vmem_txrec_t *out);
#define VMEM_TX_ALLOCS ((1u << VMEM_TX_ALLOC) | (1u << VMEM_TX_XALLOC) | (1u << VMEM_TX_QALLOC))

/* ---- audit of quantum-cached objects (audit.c) ---- */
typedef struct vmem_qaudit {
	uint32_t qa_alloc_stack, qa_free_stack;
	uint32_t qa_alloc_tid, qa_free_tid;
	uint64_t qa_alloc_time, qa_free_time;
	uint64_t qa_asize; /* the caller's size (appended: the root describes the rest) */
} vmem_qaudit_t;

/* ---- reports (report.c) ---- */
/* Print a stack, symbolized, one frame per line, to fd. */
void vmem__dbg_print_stack(int fd, const char *indent, const uintptr_t *pcs, int depth);

#endif /* VMEM_DBG_IMPL_H */
