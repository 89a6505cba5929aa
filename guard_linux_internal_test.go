//go:build linux

package skiff

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// A read from a memory-mapped file that was truncated underneath raises
// SIGBUS, as bbolt's reads do on a raft.db shortened behind its back.
// Inside guardLog it is an error, not the end of the process.
func TestGuardLogTurnsFaultIntoErrCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	if err := os.WriteFile(path, make([]byte, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := syscall.Mmap(int(f.Fd()), 0, 8192, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(m)
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	var b byte
	err = guardLog(path, "read", func() error { b = m[4096]; return nil })
	var re interface{ Addr() uintptr } // runtime's fault error
	if !errors.Is(err, ErrCorrupt) || !errors.As(err, &re) {
		t.Fatalf("guardLog(read past a truncated map) = %v (read %d), want ErrCorrupt wrapping the fault", err, b)
	}
}
