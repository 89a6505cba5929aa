package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/skiffkv/skiff/store"
)

// inspect reads files only. It never opens a node, never takes the data
// dir's lock, and writes nothing: it can look at a dir a node is using
// without getting in its way (it then reads the snapshots and leaves the
// locked log store alone), and at a backup from anywhere.

// errDamaged is wrapped when inspect found damage: the verdict is printed,
// and the exit code is 1.
var errDamaged = errors.New("damaged")

func runInspect(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	fs.BoolVar(&e.common.json, "json", e.common.json, "print one JSON object, for scripts")
	keys := fs.Bool("keys", false, "also list every key: its value's size, revisions and version (a dir: its newest snapshot's keys)")
	args, err := e.parseVerb(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("inspect", args, 1, 1, "a FILE or a DIR"); err != nil {
		return err
	}
	st, err := os.Stat(args[0])
	if err != nil {
		return usagef("inspect: %v", err)
	}
	if st.IsDir() {
		return inspectDir(e, args[0], *keys)
	}
	return inspectBackup(e, args[0], st.Size(), *keys)
}

// viewJSON describes a state: a backup's or a snapshot's.
type viewJSON struct {
	Checksum string    `json:"checksum"` // "ok", or what is wrong
	Revision uint64    `json:"revision,omitempty"`
	Keys     int       `json:"keys"`
	Bytes    int64     `json:"bytes"` // keys and values
	KeyList  []keyJSON `json:"key_list,omitempty"`
}

type keyJSON struct {
	Key            string `json:"key"`
	ValueBytes     int    `json:"value_bytes"`
	CreateRevision uint64 `json:"create_revision"`
	ModRevision    uint64 `json:"mod_revision"`
	Version        uint64 `json:"version"`
}

// readState decodes a state from r, which store.ReadView checks whole:
// its checksum, its order, and that nothing follows it.
func readState(r io.Reader, keys bool) (viewJSON, error) {
	v, err := store.ReadView(r)
	if err != nil {
		if errors.Is(err, store.ErrCorrupt) {
			return viewJSON{Checksum: err.Error()}, fmt.Errorf("%w: %w", errDamaged, err)
		}
		return viewJSON{Checksum: "unread: " + err.Error()}, err
	}
	out := viewJSON{Checksum: "ok", Revision: v.Revision(), Keys: v.Len(), Bytes: v.Bytes()}
	if keys {
		out.KeyList = []keyJSON{}
		v.Range("", "", func(e store.Entry) bool {
			out.KeyList = append(out.KeyList, keyJSON{e.Key, len(e.Value), e.CreateRevision, e.ModRevision, e.Version})
			return true
		})
	}
	return out, nil
}

func inspectBackup(e *env, path string, size int64, keys bool) error {
	f, err := os.Open(path)
	if err != nil {
		return usagef("inspect: %v", err)
	}
	defer f.Close()
	v, err := readState(f, keys)
	out := struct {
		Kind string `json:"kind"`
		Path string `json:"path"`
		Size int64  `json:"size"`
		viewJSON
	}{"backup", path, size, v}
	if perr := e.out.emit(out, func(w io.Writer) {
		tw := table(w)
		fmt.Fprintf(tw, "backup\t%s (%s)\n", path, humanBytes(size))
		printView(tw, "", v)
		tw.Flush()
		printKeys(w, v.KeyList)
	}); perr != nil {
		return perr
	}
	return errorf("inspect "+path, err)
}

// printView writes a state's lines into a table.
func printView(w io.Writer, indent string, v viewJSON) {
	fmt.Fprintf(w, "%schecksum\t%s\n", indent, v.Checksum)
	if v.Checksum != "ok" {
		return
	}
	fmt.Fprintf(w, "%srevision\t%d\n", indent, v.Revision)
	fmt.Fprintf(w, "%skeys\t%d (%s of keys and values)\n", indent, v.Keys, humanBytes(v.Bytes))
}

func printKeys(w io.Writer, keys []keyJSON) {
	if len(keys) == 0 {
		return
	}
	tw := table(w)
	fmt.Fprintln(tw, "\nKEY\tVALUE BYTES\tCREATED\tMODIFIED\tVERSION")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", printableKey(k.Key), k.ValueBytes, k.CreateRevision, k.ModRevision, k.Version)
	}
	tw.Flush()
}
