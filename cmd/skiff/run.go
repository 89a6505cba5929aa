package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// stdin is where put reads a value given as "-" and restore a backup
// given as "-". Tests replace it.
var stdin io.Reader = os.Stdin

// env is what a verb runs with.
type env struct {
	stdout, stderr io.Writer
	common         commonFlags
	out            *output
}

// verb is one subcommand.
type verb struct {
	name     string
	synopsis string // arguments, for the help
	summary  string
	client   bool // takes the common client flags (but see notAfterVerb)
	run      func(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error
}

// verbs in the order the help lists them.
var verbs = []verb{
	{"serve", "[flags]", "run a node (see skiff serve -h for every flag)", false, runServe},
	{"dev", "[--dir DIR] [--port PORT]", "run a local 3-node cluster until interrupted", false, runDev},
	{"put", "KEY VALUE|-", "set a key (- reads the value from stdin); --create, --rev REV", true, runPut},
	{"get", "KEY", "print a key's value; --stale", true, runGet},
	{"del", "KEY", "delete a key (deleting an absent key succeeds); --rev REV", true, runDel},
	{"ls", "[PREFIX]", "list the keys below a prefix; --limit, --after, --keys-only, --stale", true, runLs},
	{"children", "[PREFIX]", "list one level below a prefix, like a directory", true, runChildren},
	{"prefixes", "", "list the top-level namespaces", true, runPrefixes},
	{"watch", "PREFIX|KEY", "print changes until interrupted; --from REV, --initial, --key, --count N", true, runWatch},
	{"members", "", "list the cluster's members", true, runMembers},
	{"add-voter", "ID ADDR", "add a voting member (promoted once it has caught up)", true, runAddVoter},
	{"add-nonvoter", "ID ADDR", "add a non-voting member", true, runAddNonvoter},
	{"remove", "ID", "remove a member", true, runRemove},
	{"transfer-leader", "[ID]", "move leadership to ID, or to any suitable voter", true, runTransfer},
	{"status", "[ADDR]", "print a node's status (every endpoint when no ADDR)", true, runStatus},
	{"backup", "FILE|-", "write a backup of the cluster's state, taken on one node", true, runBackup},
	{"restore", "FILE|-", "replace the cluster's state with a backup (sent to the leader)", true, runRestore},
	{"inspect", "FILE|DIR", "read a backup file or a stopped node's data dir (no network); --keys", false, runInspect},
}

// notAfterVerb names common flags a verb does not take after its name,
// because it has a flag of that name: watch --key watches one key, so a
// TLS key for watch comes before the verb (skiff --key k.pem watch ...)
// or from SKIFF_KEY.
var notAfterVerb = map[string][]string{"watch": {"key"}}

// Run runs the skiff command with args (without the program name) and
// returns its exit code. It stops when ctx ends: serve and dev shut their
// nodes down cleanly, watch ends, and other verbs give up.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr}
	err := run(ctx, e, args)
	code := exitCode(err)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case err != nil:
		// Sentinels say "skiff: ..." themselves; once is enough.
		fmt.Fprintf(stderr, "skiff: %s\n", strings.ReplaceAll(err.Error(), ": skiff: ", ": "))
		if errors.Is(err, errUsage) {
			fmt.Fprintln(stderr, "Run 'skiff help' for usage.")
		}
	}
	return code
}

func run(ctx context.Context, e *env, args []string) error {
	if err := commonFromEnv(&e.common); err != nil {
		return err
	}
	global := flag.NewFlagSet("skiff", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	addCommon(global, &e.common)
	if err := global.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printHelp(e.stdout)
			return err
		}
		return usagef("%v", err)
	}
	args = global.Args()
	if len(args) == 0 {
		return usagef("no verb given")
	}
	name, args := args[0], args[1:]
	if name == "help" {
		return help(e, args)
	}
	v, ok := findVerb(name)
	if !ok {
		return usagef("unknown verb %q", name)
	}
	fs := flag.NewFlagSet(v.name, flag.ContinueOnError)
	if v.client {
		addCommon(fs, &e.common, notAfterVerb[v.name]...)
	}
	e.out = &output{w: e.stdout}
	err := v.run(ctx, e, fs, args)
	if errors.Is(err, flag.ErrHelp) {
		printVerbHelp(e.stdout, v, fs)
	}
	return err
}

func findVerb(name string) (verb, bool) {
	for _, v := range verbs {
		if v.name == name {
			return v, true
		}
	}
	return verb{}, false
}

// parseVerb parses a verb's flags and arguments, and applies --json.
func (e *env) parseVerb(fs *flag.FlagSet, args []string) ([]string, error) {
	rest, err := parseFlags(fs, args)
	e.out.json = e.common.json
	return rest, err
}

// help prints the help, or one verb's.
func help(e *env, args []string) error {
	if len(args) == 0 {
		printHelp(e.stdout)
		return nil
	}
	v, ok := findVerb(args[0])
	if !ok {
		return usagef("unknown verb %q", args[0])
	}
	// Running the verb with -h registers its flags and prints its help.
	fs := flag.NewFlagSet(v.name, flag.ContinueOnError)
	if v.client {
		addCommon(fs, &e.common, notAfterVerb[v.name]...)
	}
	e.out = &output{w: e.stdout}
	if err := v.run(context.Background(), e, fs, []string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		return err
	}
	printVerbHelp(e.stdout, v, fs)
	return nil
}

func printHelp(w io.Writer) {
	fmt.Fprint(w, `skiff runs and talks to skiff clusters.

Usage:
  skiff [common flags] VERB [flags] [arguments]

Verbs:
`)
	tw := table(w)
	for _, v := range verbs {
		fmt.Fprintf(tw, "  %s %s\t%s\n", v.name, v.synopsis, v.summary)
	}
	tw.Flush()
	fmt.Fprint(w, `
Common flags of the client verbs (before or after the verb):
`)
	fs := flag.NewFlagSet("skiff", flag.ContinueOnError)
	addCommon(fs, &commonFlags{})
	fs.SetOutput(w)
	fs.PrintDefaults()
	fmt.Fprint(w, `
Output is for people unless --json: then one JSON object per result (a
watch prints one per event). Flags may follow the arguments; "--" ends
the flags, for keys that start with a dash.

`+exitCodesHelp+`
Run 'skiff help VERB' for a verb's flags.
`)
}

func printVerbHelp(w io.Writer, v verb, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: skiff %s %s\n\n%s.\n", v.name, v.synopsis, strings.ToUpper(v.summary[:1])+v.summary[1:])
	if verbNotes[v.name] != "" {
		fmt.Fprintf(w, "\n%s", verbNotes[v.name])
	}
	fmt.Fprint(w, "\nFlags:\n")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fmt.Fprintf(w, "\n%s", exitCodesHelp)
}

// verbNotes says more about the verbs that need it.
var verbNotes = map[string]string{
	"put": `Without flags put sets the key whatever it holds. --create sets it only
if it is absent (exit 4 if it exists); --rev REV only if its revision is
REV (exit 4 otherwise). A value of "-" is read from standard input.
`,
	"get": `Prints the value as it is, followed by a newline unless it ends with one;
--json prints the key, its value and its revisions.
`,
	"watch": `Prints each change below PREFIX (or to KEY, with --key) as it is
committed, until interrupted or --count events. --initial first prints the
current keys, then a "synced" line. --from REV resumes after revision REV.
Here --key means one key: give a client certificate's key before the verb
(skiff --cert c.pem --key k.pem watch ...) or in SKIFF_KEY.
`,
	"backup": `The backup is written to FILE.tmp, synced and renamed to FILE once it is
complete, so FILE never holds part of a backup. "-" writes to stdout.
`,
	"restore": `Every key written after the backup was taken is lost; the cluster keeps
its members. The backup is checked whole before anything changes.
`,
	"inspect": `Reads a backup file, or a node's data dir without opening the node: its
ID, log store, term, log range and entries' checksums, and its snapshots.
A running node's log store is locked; inspect then reads only the
snapshots and says so. Exits 1 if anything fails its checksum.
`,
}
