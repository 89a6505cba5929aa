// Package dirlock takes an exclusive advisory lock on a data directory, so
// two nodes never share one.
package dirlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrLocked is returned when another process or node holds the lock.
var ErrLocked = errors.New("directory is in use by another node")

// Lock is a held lock; Release it to let another node open the directory.
type Lock struct {
	f *os.File
}

// Acquire locks dir, creating its LOCK file if needed. It fails at once,
// with an error wrapping ErrLocked, if the lock is held.
func Acquire(dir string) (*Lock, error) {
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &Lock{f: f}, nil
}

// Release unlocks the directory. It is safe to call more than once.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the descriptor drops the flock
	l.f = nil
	return err
}
