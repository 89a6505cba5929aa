package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/skiffkv/skiff"
)

// runWatch prints changes until ctx ends (an interrupt: exit 0), --count
// events have been printed, or the watch fails. --timeout, when given,
// bounds the whole watch; by default it runs for as long as it is let.
func runWatch(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	from := fs.Uint64("from", 0, "print the changes after revision `REV` (a resumed watch), as far as the nodes' history reaches")
	initial := fs.Bool("initial", false, "first print the keys as they are now, then a synced line, then changes")
	exact := fs.Bool("key", false, "watch one key rather than a prefix")
	prev := fs.Bool("prev", false, "with each change, print what the key held before")
	count := fs.Int("count", 0, "stop after `N` events (0: run until interrupted)")
	args, err := e.parseVerb(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("watch", args, 1, 1, "PREFIX (or KEY with --key)"); err != nil {
		return err
	}
	if *count < 0 {
		return usagef("--count must not be negative")
	}
	var opts []skiff.WatchOption
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "from" { // --from 0 is a revision too: the start of history
			opts = append(opts, skiff.WatchFrom(*from))
		}
	})
	if *initial {
		opts = append(opts, skiff.WithInitialState())
	}
	if *exact {
		opts = append(opts, skiff.WatchKey())
	}
	if *prev {
		opts = append(opts, skiff.WithPrevValue())
	}
	ctx, cancel := e.withTimeout(ctx, 0)
	defer cancel()
	cl, err := e.dial(ctx)
	if err != nil {
		return errorf("watch", err)
	}
	defer closeClient(cl)
	err = e.watch(ctx, cl, args[0], *count, opts)
	if errors.Is(err, skiff.ErrCompacted) {
		// The history moved on (or the watch fell behind it): what is
		// left is to start again from the state as it is.
		err = fmt.Errorf("%w; start again from the current state with --initial", err)
	}
	return errorf("watch", err)
}

func (e *env) watch(ctx context.Context, cl *skiff.Client, prefix string, count int, opts []skiff.WatchOption) error {
	w, err := cl.Watch(ctx, prefix, opts...)
	if err != nil {
		return stopped(ctx, err)
	}
	defer w.Close()
	n := 0
	for ev := range w.Events() {
		if err := e.out.emit(eventJSON(ev), func(out io.Writer) { printEvent(out, ev) }); err != nil {
			return err
		}
		if n++; count > 0 && n == count {
			return nil
		}
	}
	return stopped(ctx, w.Err())
}

// stopped is nil when the watch ended because ctx did: an interrupt is
// how a watch is meant to end, and so is --timeout.
func stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil && (err == nil || errors.Is(err, ctx.Err())) {
		return nil
	}
	return err
}

func eventJSON(ev skiff.Event) any {
	out := struct {
		Type     string `json:"type"`
		Key      string `json:"key,omitempty"`
		Revision uint64 `json:"revision"`
		jsonValue
		CreateRevision uint64  `json:"create_revision,omitempty"`
		Version        uint64  `json:"version,omitempty"`
		Prev           *jsonKV `json:"prev,omitempty"`
	}{Key: ev.Key, Revision: ev.Revision, CreateRevision: ev.CreateRevision, Version: ev.Version}
	switch ev.Type {
	case skiff.EventPut:
		out.Type = "put"
		out.jsonValue = valueJSON(ev.Value)
		if ev.Value == nil {
			out.jsonValue = valueJSON([]byte{})
		}
	case skiff.EventDelete:
		out.Type = "delete"
	case skiff.EventSynced:
		out.Type = "synced"
	}
	if ev.Prev != nil {
		p := kvJSON(*ev.Prev, true)
		out.Prev = &p
	}
	return out
}

func printEvent(w io.Writer, ev skiff.Event) {
	switch ev.Type {
	case skiff.EventPut:
		fmt.Fprintf(w, "PUT %s = %s (revision %d)\n", printableKey(ev.Key), printable(ev.Value), ev.Revision)
	case skiff.EventDelete:
		fmt.Fprintf(w, "DELETE %s (revision %d)\n", printableKey(ev.Key), ev.Revision)
	case skiff.EventSynced:
		fmt.Fprintf(w, "SYNCED at revision %d\n", ev.Revision)
	}
	if ev.Prev != nil {
		fmt.Fprintf(w, "  was %s (revision %d)\n", printable(ev.Prev.Value), ev.Prev.ModRevision)
	}
}
