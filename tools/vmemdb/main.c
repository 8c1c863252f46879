/*
 * vmemdb: the command line.
 *
 *   vmemdb [--json] [-q] [-e COMMANDS]... SNAPSHOT
 *   vmemdb [--json] [-q] [-e COMMANDS]... -p PID
 *   vmemdb [--json] [-q] [-e COMMANDS]... EXE CORE
 *   vmemdb [--json] [-q] [-e COMMANDS]... CORE     (the executable the core names)
 *
 * Without -e, commands come from the prompt (or from stdin when it is not a
 * terminal).  Exit status: 0, 1 for a target that cannot be read or a
 * command that failed, 2 for a usage error.  Every error is one line.
 */
#include "vmemdb.h"

#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *fp, bool full)
{
	if (!full) {
		fprintf(
		    fp,
		    "usage: vmemdb [--json] [-q] [-e COMMANDS]... SNAPSHOT | -p PID | [EXE] CORE "
		    "(vmemdb --help)\n");
		return;
	}
	fprintf(
	    fp,
	    "usage: vmemdb [--json] [-q] [-e COMMANDS]... SNAPSHOT\n"
	    "       vmemdb [--json] [-q] [-e COMMANDS]... -p PID\n"
	    "       vmemdb [--json] [-q] [-e COMMANDS]... [EXE] CORE\n"
	    "  -e COMMANDS  run these (mdb style: '::vmem; ::findleaks') instead of the prompt\n"
	    "  -p PID       a live process, stopped while vmemdb runs\n"
	    "  --json       every command writes JSON\n"
	    "  -q           no notes about the target\n"
	    "::help at the prompt lists the commands; man vmemdb\n");
}

typedef struct args {
	bool json, quiet;
	char **cmds;
	int ncmds;
	const char *pid;
	const char *file1, *file2;
} args_t;

static int parse_args(int argc, char **argv, args_t *a)
{
	static const struct option longopts[] = {{"json", no_argument, NULL, 'j'},
	                                         {"help", no_argument, NULL, 'h'},
	                                         {"version", no_argument, NULL, 'V'},
	                                         {NULL, 0, NULL, 0}};
	int ch;

	memset(a, 0, sizeof(*a));
	a->cmds = calloc((size_t)argc + 1, sizeof(char *));
	if (a->cmds == NULL)
		return 1;
	while ((ch = getopt_long(argc, argv, "e:p:qhV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'e':
			a->cmds[a->ncmds++] = optarg;
			break;
		case 'p':
			a->pid = optarg;
			break;
		case 'q':
			a->quiet = true;
			break;
		case 'j':
			a->json = true;
			break;
		case 'h':
			usage(stdout, true);
			exit(0);
		case 'V':
			printf("vmemdb (libvmem) 0.1.0, reads libvmem root version 1 and snapshot "
			       "version %d\n",
			       VSNAP_VERSION);
			exit(0);
		default:
			usage(stderr, false);
			return 2;
		}
	}
	argc -= optind;
	argv += optind;
	if ((a->pid != NULL && argc != 0) || (a->pid == NULL && (argc < 1 || argc > 2))) {
		usage(stderr, false);
		return 2;
	}
	a->file1 = argc > 0 ? argv[0] : NULL;
	a->file2 = argc > 1 ? argv[1] : NULL;
	return 0;
}

static vdb_target_t *open_target(const args_t *a, char *err, size_t errlen)
{
	char exe[PATH_MAX];
	uint64_t pid;
	int core;

	if (a->pid != NULL) {
		if (!vdb_parse_num(a->pid, 10, false, &pid)) {
			snprintf(err, errlen, "bad process id '%s'", a->pid);
			return NULL;
		}
		return vdb_open_live(pid, err, errlen);
	}
	if (a->file2 != NULL)
		return vdb_open_core(a->file1, a->file2, err, errlen);
	core = vdb_file_is_core(a->file1);
	if (core < 0) {
		snprintf(err, errlen, "%s: cannot open", a->file1);
		return NULL;
	}
	if (core == 0)
		return vdb_open_snapshot(a->file1, err, errlen);
	if (vdb_core_exe(a->file1, exe, sizeof(exe)) != 0) {
		snprintf(err, errlen, "%s: a core file: give its executable too (vmemdb EXE CORE)",
		         a->file1);
		return NULL;
	}
	return vdb_open_core(exe, a->file1, err, errlen);
}

int main(int argc, char **argv)
{
	args_t a;
	char err[1024];
	vdb_target_t *t;
	vdb_t db;
	int rc = parse_args(argc, argv, &a);

	if (rc != 0) {
		free(a.cmds);
		return rc;
	}
	if (a.pid != NULL && !vdb_parse_num(a.pid, 10, false, &(uint64_t){0})) {
		fprintf(stderr, "vmemdb: bad process id '%s'\n", a.pid); /* a usage error */
		free(a.cmds);
		return 2;
	}
	t = open_target(&a, err, sizeof(err));
	if (t == NULL) {
		fprintf(stderr, "vmemdb: %s\n", err);
		free(a.cmds);
		return 1;
	}
	memset(&db, 0, sizeof(db));
	if (t->kind != VDB_SNAP && vdb_collect(t, &db.root, err, sizeof(err)) != 0) {
		fprintf(stderr, "vmemdb: %s: %s\n", t->name, err);
		vdb_target_close(t);
		free(a.cmds);
		return 1;
	}
	if (vdb_session_init(&db, t) != 0) {
		fprintf(stderr, "vmemdb: out of memory\n");
		vdb_session_fini(&db);
		vdb_target_close(t);
		free(a.cmds);
		return 1;
	}
	db.json = a.json;
	db.out = stdout;
	for (int i = 0; i < t->nnotes && !a.quiet; i++)
		fprintf(stderr, "vmemdb: note: %s\n", t->notes[i]);
	if (a.ncmds > 0) {
		for (int i = 0; i < a.ncmds && rc == 0 && !db.quit; i++)
			rc = vdb_run_line(&db, a.cmds[i]) != 0 ? 1 : 0;
	} else {
		db.interactive = isatty(STDIN_FILENO);
		if (db.interactive && !a.quiet)
			fprintf(stderr,
			        "vmemdb: %s: %zu arenas%s; ::help for commands, ::quit to leave\n",
			        t->name, db.s->narenas,
			        t->kind == VDB_LIVE ? " (stopped until vmemdb exits)" : "");
		rc = vdb_repl(&db);
	}
	if (fflush(stdout) != 0)
		rc = 1;
	vdb_dot_fini(&db);
	vdb_session_fini(&db);
	vdb_target_close(t);
	free(a.cmds);
	return rc;
}
