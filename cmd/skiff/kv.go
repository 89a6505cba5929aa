package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/skiffkv/skiff"
)

// maxStdinValue bounds a value read from stdin: the largest value any
// node accepts (MaxValueSize is at most 32 MiB), plus one byte so that a
// longer one is refused here rather than read whole into memory.
const maxStdinValue = 32<<20 + 1

// clientVerb is the frame of a client verb: parse, check the arguments,
// dial, run with the verb's deadline, close.
func clientVerb(ctx context.Context, e *env, fs *flag.FlagSet, args []string, lo, hi int, names string, timeout time.Duration,
	do func(ctx context.Context, cl *skiff.Client, args []string) error) error {
	return checkedClientVerb(ctx, e, fs, args, lo, hi, names, timeout, nil, do)
}

// checkedClientVerb is clientVerb with a check of the flags and arguments
// that runs before dialing, so that a command that is wrong says so
// (exit 2) whether or not the cluster can be reached.
func checkedClientVerb(ctx context.Context, e *env, fs *flag.FlagSet, args []string, lo, hi int, names string, timeout time.Duration,
	check func(args []string) error, do func(ctx context.Context, cl *skiff.Client, args []string) error) error {
	args, err := e.parseVerb(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs.Name(), args, lo, hi, names); err != nil {
		return err
	}
	if check != nil {
		if err := check(args); err != nil {
			return err
		}
	}
	ctx, cancel := e.withTimeout(ctx, timeout)
	defer cancel()
	cl, err := e.dial(ctx)
	if err != nil {
		return errorf(fs.Name(), err)
	}
	defer closeClient(cl)
	return errorf(fs.Name(), do(ctx, cl, args))
}

func runPut(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	create := fs.Bool("create", false, "set the key only if it does not exist (exit 4 if it does)")
	rev := fs.Uint64("rev", 0, "set the key only if its revision is `REV` (exit 4 otherwise)")
	check := func(args []string) error {
		if *create && *rev != 0 {
			return usagef("--create and --rev exclude each other")
		}
		return checkKey(args)
	}
	return checkedClientVerb(ctx, e, fs, args, 2, 2, "KEY and VALUE", defaultTimeout, check, func(ctx context.Context, cl *skiff.Client, args []string) error {
		key, value := args[0], []byte(args[1])
		if args[1] == "-" {
			var err error
			if value, err = readValue(stdin); err != nil {
				return err
			}
		}
		var r uint64
		var err error
		switch {
		case *create:
			r, err = cl.Create(ctx, key, value)
		case *rev != 0:
			r, err = cl.CompareAndSwap(ctx, key, value, *rev)
		default:
			r, err = cl.Put(ctx, key, value)
		}
		if err != nil {
			return err
		}
		return e.out.emit(struct {
			Key      string `json:"key"`
			Revision uint64 `json:"revision"`
		}{key, r}, func(w io.Writer) { fmt.Fprintf(w, "OK revision %d\n", r) })
	})
}

// checkKey refuses a first argument that no node takes as a key.
func checkKey(args []string) error {
	if err := skiff.ValidKey(args[0]); err != nil {
		return usagef("%v", err)
	}
	return nil
}

// readValue reads a value from r, refusing one larger than any node
// accepts.
func readValue(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxStdinValue))
	if err != nil {
		return nil, fmt.Errorf("read the value from stdin: %w", err)
	}
	if len(b) == maxStdinValue {
		return nil, usagef("the value on stdin is larger than any node accepts (32 MiB)")
	}
	return b, nil
}

func runGet(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	stale := fs.Bool("stale", false, "read the answering node's state without asking the leader (may miss recent writes)")
	return checkedClientVerb(ctx, e, fs, args, 1, 1, "KEY", defaultTimeout, checkKey, func(ctx context.Context, cl *skiff.Client, args []string) error {
		var opts []skiff.ReadOption
		if *stale {
			opts = append(opts, skiff.Stale())
		}
		kv, err := cl.Get(ctx, args[0], opts...)
		if err != nil {
			return err
		}
		return e.out.emit(kvJSON(*kv, true), func(w io.Writer) {
			w.Write(kv.Value)
			if !bytes.HasSuffix(kv.Value, []byte("\n")) {
				fmt.Fprintln(w)
			}
		})
	})
}

func runDel(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	rev := fs.Uint64("rev", 0, "delete the key only if its revision is `REV` (exit 4 otherwise)")
	return checkedClientVerb(ctx, e, fs, args, 1, 1, "KEY", defaultTimeout, checkKey, func(ctx context.Context, cl *skiff.Client, args []string) error {
		var err error
		if *rev != 0 {
			err = cl.DeleteIf(ctx, args[0], *rev)
		} else {
			err = cl.Delete(ctx, args[0])
		}
		if err != nil {
			return err
		}
		return e.out.emit(struct {
			Key     string `json:"key"`
			Deleted bool   `json:"deleted"`
		}{args[0], true}, func(w io.Writer) { fmt.Fprintln(w, "OK") })
	})
}
