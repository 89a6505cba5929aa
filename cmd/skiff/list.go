package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/skiffkv/skiff"
)

// readFlags are the flags of the listing verbs.
type readFlags struct {
	stale    *bool
	limit    *int
	after    *string
	keysOnly *bool
}

func addReadFlags(fs *flag.FlagSet, paged bool) readFlags {
	r := readFlags{stale: fs.Bool("stale", false, "read the answering node's state without asking the leader")}
	if paged {
		r.limit = fs.Int("limit", 0, "at most `N` entries (0: all)")
		r.after = fs.String("after", "", "start after `NAME` (the last one of a previous page)")
	}
	return r
}

// check refuses flag values no node would take.
func (r readFlags) check([]string) error {
	if r.limit != nil && *r.limit < 0 {
		return usagef("--limit must not be negative")
	}
	return nil
}

func (r readFlags) options() []skiff.ReadOption {
	var opts []skiff.ReadOption
	if *r.stale {
		opts = append(opts, skiff.Stale())
	}
	if r.limit != nil {
		opts = append(opts, skiff.WithLimit(*r.limit), skiff.WithAfter(*r.after))
	}
	if r.keysOnly != nil && *r.keysOnly {
		opts = append(opts, skiff.WithKeysOnly())
	}
	return opts
}

func runLs(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	rf := addReadFlags(fs, true)
	rf.keysOnly = fs.Bool("keys-only", false, "print keys without their values")
	return checkedClientVerb(ctx, e, fs, args, 0, 1, "an optional PREFIX", defaultTimeout, rf.check, func(ctx context.Context, cl *skiff.Client, args []string) error {
		opts := rf.options()
		res, err := cl.List(ctx, firstOr(args, ""), opts...)
		if err != nil {
			return err
		}
		return e.out.emit(listJSON(res, !*rf.keysOnly), func(w io.Writer) {
			tw := table(w)
			for _, kv := range res.KVs {
				if *rf.keysOnly {
					fmt.Fprintln(tw, printableKey(kv.Key))
				} else {
					fmt.Fprintf(tw, "%s\t%s\n", printableKey(kv.Key), printable(kv.Value))
				}
			}
			tw.Flush()
			if res.More && len(res.KVs) > 0 {
				fmt.Fprintf(e.stderr, "(more: continue with --after %q)\n", res.KVs[len(res.KVs)-1].Key)
			}
		})
	})
}

func listJSON(res *skiff.ListResult, withValues bool) any {
	kvs := make([]jsonKV, len(res.KVs))
	for i, kv := range res.KVs {
		kvs[i] = kvJSON(kv, withValues)
	}
	return struct {
		Revision uint64   `json:"revision"`
		More     bool     `json:"more"`
		KVs      []jsonKV `json:"kvs"`
	}{res.Revision, res.More, kvs}
}

func firstOr(args []string, def string) string {
	if len(args) > 0 {
		return args[0]
	}
	return def
}

func runChildren(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	rf := addReadFlags(fs, true)
	return checkedClientVerb(ctx, e, fs, args, 0, 1, "an optional PREFIX", defaultTimeout, rf.check, func(ctx context.Context, cl *skiff.Client, args []string) error {
		opts := rf.options()
		children, err := cl.Children(ctx, firstOr(args, ""), opts...)
		if err != nil {
			return err
		}
		type child struct {
			Name        string `json:"name"`
			IsKey       bool   `json:"is_key"`
			HasChildren bool   `json:"has_children"`
		}
		out := make([]child, len(children))
		for i, c := range children {
			out[i] = child(c)
		}
		return e.out.emit(struct {
			Children []child `json:"children"`
		}{out}, func(w io.Writer) {
			// A name with keys below it ends with "/", like a directory;
			// one that is both a key and a directory prints both ways.
			for _, c := range children {
				if c.IsKey {
					fmt.Fprintln(w, printableKey(c.Name))
				}
				if c.HasChildren {
					fmt.Fprintln(w, printableKey(c.Name)+"/")
				}
			}
		})
	})
}

func runPrefixes(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	rf := addReadFlags(fs, false)
	return checkedClientVerb(ctx, e, fs, args, 0, 0, "no arguments", defaultTimeout, rf.check, func(ctx context.Context, cl *skiff.Client, args []string) error {
		opts := rf.options()
		ps, err := cl.Prefixes(ctx, opts...)
		if err != nil {
			return err
		}
		if ps == nil {
			ps = []string{}
		}
		return e.out.emit(struct {
			Prefixes []string `json:"prefixes"`
		}{ps}, func(w io.Writer) {
			for _, p := range ps {
				fmt.Fprintln(w, printableKey(p))
			}
		})
	})
}
