package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/skiffkv/skiff"
)

func runBackup(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	return checkedClientVerb(ctx, e, fs, args, 1, 1, "FILE (or - for stdout)", backupTimeout, checkBackupFile, func(ctx context.Context, cl *skiff.Client, args []string) error {
		path := args[0]
		if path == "-" {
			cw := &countWriter{w: e.stdout}
			return cl.Backup(ctx, cw)
		}
		n, err := backupToFile(ctx, cl, path)
		if err != nil {
			return err
		}
		return e.out.emit(struct {
			File  string `json:"file"`
			Bytes int64  `json:"bytes"`
		}{path, n}, func(w io.Writer) { fmt.Fprintf(w, "OK backup written to %s (%s)\n", path, humanBytes(n)) })
	})
}

// checkBackupFile refuses, before anything is asked of the cluster, a
// backup file that cannot be written: its dir must exist.
func checkBackupFile(args []string) error {
	if args[0] == "-" {
		return nil
	}
	if st, err := os.Stat(filepath.Dir(args[0])); err != nil || !st.IsDir() {
		return usagef("cannot write the backup to %s: %s is not a directory", args[0], filepath.Dir(args[0]))
	}
	if st, err := os.Stat(args[0]); err == nil && st.IsDir() {
		return usagef("%s is a directory; name the backup file", args[0])
	}
	return nil
}

// checkRestoreFile refuses, before anything is asked of the cluster, a
// backup file that cannot be read.
func checkRestoreFile(args []string) error {
	if args[0] == "-" {
		return nil
	}
	st, err := os.Stat(args[0])
	if err != nil {
		return usagef("open the backup: %v", err)
	}
	if st.IsDir() {
		return usagef("%s is a directory, not a backup file", args[0])
	}
	return nil
}

// backupToFile writes the backup to path.tmp, syncs it and renames it
// to path, so that path holds a whole backup or nothing new: a failed
// backup leaves an older file of that name as it was.
func backupToFile(ctx context.Context, cl *skiff.Client, path string) (n int64, err error) {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, usagef("create the backup file: %v", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	cw := &countWriter{w: f}
	if err := cl.Backup(ctx, cw); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync() // the rename itself is durable once the dir is synced
		d.Close()
	}
	return cw.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func runRestore(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	return checkedClientVerb(ctx, e, fs, args, 1, 1, "FILE (or - for stdin)", backupTimeout, checkRestoreFile, func(ctx context.Context, cl *skiff.Client, args []string) error {
		path := args[0]
		var r io.Reader = stdin
		if path != "-" {
			f, err := os.Open(path)
			if err != nil {
				return usagef("open the backup: %v", err)
			}
			defer f.Close()
			if st, err := f.Stat(); err == nil && st.IsDir() {
				return usagef("%s is a directory, not a backup file", path)
			}
			r = f // an *os.File can seek: sent again if leadership moves
		}
		if err := cl.Restore(ctx, r); err != nil {
			if errors.Is(err, skiff.ErrCorrupt) {
				return fmt.Errorf("%s is not an intact backup; nothing changed: %w", path, err)
			}
			return err
		}
		return e.out.emit(struct {
			File     string `json:"file"`
			Restored bool   `json:"restored"`
		}{path, true}, func(w io.Writer) { fmt.Fprintf(w, "OK restored %s\n", path) })
	})
}
