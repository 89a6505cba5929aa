package skiff

import (
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// panickyLog is a log store whose reads panic, as raft-boltdb's do on a
// damaged page.
type panickyLog struct {
	raft.LogStore
	value any
}

func (p panickyLog) LastIndex() (uint64, error) { return 10, nil }

func (p panickyLog) GetLog(uint64, *raft.Log) error { panic(p.value) }

// A panic on the reader's own goroutine is kept for replay to report,
// not left to end the process.
func TestLogReaderRecoversPanic(t *testing.T) {
	r := readLogAhead(panickyLog{value: "assertion failed: Page expected to be: 5"}, 1)
	if got := r.wait(); len(got) != 0 {
		t.Fatalf("wait() = %d entries, want none", len(got))
	}
	if r.panicked == nil || !strings.Contains(r.panicked.Error(), "Page expected") {
		t.Fatalf("panicked = %v, want the panic's value", r.panicked)
	}
}

func TestGuardLogTurnsPanicIntoErrCorrupt(t *testing.T) {
	cause := errors.New("msgpack decode error")
	err := guardLog("/data/raft.db", "read the log", func() error { panic(cause) })
	if !errors.Is(err, ErrCorrupt) || !errors.Is(err, cause) || !strings.Contains(err.Error(), "/data/raft.db") {
		t.Fatalf("guardLog(panicking func) = %v, want ErrCorrupt naming the file and wrapping the panic's error", err)
	}
	if err := guardLog("/data/raft.db", "open", func() error { return cause }); err != cause {
		t.Fatalf("guardLog(failing func) = %v, want its error unchanged", err)
	}
}
