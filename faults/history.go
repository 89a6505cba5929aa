package faults

import (
	"errors"
	"math"
	"sync"
	"time"

	"github.com/skiffkv/skiff"
)

// Kind is what an operation does; each maps to one KV method.
type Kind string

const (
	Put      Kind = "put"
	Create   Kind = "create"
	CAS      Kind = "cas"      // CompareAndSwap
	Delete   Kind = "delete"   // Delete: no revision comes back
	DeleteIf Kind = "deleteif" // DeleteIf
	Get      Kind = "get"
	List     Kind = "list" // List of the workload's whole key set
)

// Outcome is how an operation ended, as far as the caller can tell.
type Outcome string

const (
	// OK: the call succeeded.
	OK Outcome = "ok"
	// Failed: the call failed with an error that says it changed nothing
	// (a failed condition, no leader before it was sent, ...).
	Failed Outcome = "failed"
	// Unknown: the call was a write that may or may not have taken effect
	// (ErrIndeterminate). Its return time is unbounded.
	Unknown Outcome = "unknown"
)

// Entry is one key as a read saw it.
type Entry struct {
	Key     string `json:"k"`
	Value   string `json:"v"`
	Create  uint64 `json:"c"`
	Mod     uint64 `json:"m"`
	Version uint64 `json:"n"`
}

// Op is one recorded operation: its input, its outcome and output, and
// its call and return times in nanoseconds since the history began.
type Op struct {
	Client int    `json:"cl"`
	Kind   Kind   `json:"op"`
	Key    string `json:"k,omitempty"`
	Value  string `json:"v,omitempty"` // put, create, cas
	Rev    uint64 `json:"r,omitempty"` // cas, deleteif: the expected ModRevision

	Outcome Outcome `json:"out"`
	Err     string  `json:"err,omitempty"` // the error's text, for Failed and Unknown
	// NotFound: a get found no key (its outcome is OK). Mismatch: a
	// conditional write failed because its condition did not hold
	// (ErrExists, ErrRevisionMismatch).
	NotFound bool    `json:"nf,omitempty"`
	Mismatch bool    `json:"mm,omitempty"`
	OutRev   uint64  `json:"or,omitempty"` // put, create, cas: the write's revision
	Got      Entry   `json:"got,omitempty"`
	Listed   []Entry `json:"ls,omitempty"`

	Call   int64 `json:"call"`
	Return int64 `json:"ret"`
}

// Never is the return time of an operation whose outcome is unknown.
const Never int64 = math.MaxInt64

// Recorder collects the operations of a run. It is safe for concurrent
// use.
type Recorder struct {
	start time.Time
	mu    sync.Mutex
	ops   []Op
}

// NewRecorder starts a history now.
func NewRecorder() *Recorder { return &Recorder{start: time.Now()} }

// Now returns the time since the history began, in nanoseconds.
func (r *Recorder) Now() int64 { return int64(time.Since(r.start)) }

// Add records op; its Call must have been taken with Now before the call
// and its Return after it (Never for Unknown).
func (r *Recorder) Add(op Op) {
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

// Ops returns a copy of the operations recorded so far.
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Op(nil), r.ops...)
}

// classify sets op's outcome from err, as the caller sees it: a write
// fails with ErrIndeterminate when it may have taken effect, and with any
// other error only when it did not. A read that finds no key succeeded.
func classify(op *Op, err error) {
	switch {
	case err == nil:
		op.Outcome = OK
	case op.Kind == Get && errors.Is(err, skiff.ErrNotFound):
		op.Outcome, op.NotFound = OK, true
	case errors.Is(err, skiff.ErrIndeterminate):
		op.Outcome, op.Err = Unknown, err.Error()
	default:
		op.Outcome, op.Err = Failed, err.Error()
		op.Mismatch = errors.Is(err, skiff.ErrExists) || errors.Is(err, skiff.ErrRevisionMismatch)
	}
}
