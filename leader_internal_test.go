package skiff

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/skiffkv/skiff/internal/command"
)

// fakeLeader answers the calls onLeader sends it from a script of errors,
// one per call; once the script is spent it hands the call to the real
// leader behind it (this node's own Raft), or fails it with last when set.
type fakeLeader struct {
	real leader

	mu     sync.Mutex
	script []error
	last   error
	calls  int
	onCall func(call int) // runs before a call is answered
}

func (f *fakeLeader) next() error {
	f.mu.Lock()
	f.calls++
	call := f.calls
	var err error
	if len(f.script) > 0 {
		err, f.script = f.script[0], f.script[1:]
	} else {
		err = f.last
	}
	hook := f.onCall
	f.mu.Unlock()
	if hook != nil {
		hook(call)
	}
	return err
}

func (f *fakeLeader) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakeLeader) apply(ctx context.Context, op command.Op) (*applyResult, error) {
	if err := f.next(); err != nil {
		return nil, err
	}
	return f.real.apply(ctx, op)
}

func (f *fakeLeader) readIndex(ctx context.Context) (uint64, error) {
	if err := f.next(); err != nil {
		return 0, err
	}
	return f.real.readIndex(ctx)
}

func (f *fakeLeader) addMember(ctx context.Context, id, addr string, voter bool) error {
	if err := f.next(); err != nil {
		return err
	}
	return f.real.addMember(ctx, id, addr, voter)
}

func (f *fakeLeader) removeMember(ctx context.Context, id string) error {
	if err := f.next(); err != nil {
		return err
	}
	return f.real.removeMember(ctx, id)
}

func (f *fakeLeader) transferLeadership(ctx context.Context, id string) error {
	if err := f.next(); err != nil {
		return err
	}
	return f.real.transferLeadership(ctx, id)
}

// withFakeLeader opens a one-node cluster whose calls for the leader all
// go to f, which stands in front of the node's own Raft.
func withFakeLeader(t *testing.T, f *fakeLeader) *Node {
	n := openTestNode(t)
	f.real = localLeader{n}
	n.leaderAt = func(context.Context) (leader, error) { return f, nil }
	return n
}

// A write whose attempts fail in ways that prove it was not applied is
// sent again until one lands, and it lands once.
func TestOnLeaderResendsWhatWasNotApplied(t *testing.T) {
	notApplied := []error{
		fmt.Errorf("%w: moved", ErrNotLeader),
		fmt.Errorf("%w: none yet", ErrNoLeader),
		fmt.Errorf("%w: connection refused", ErrUnavailable),
		&remoteError{errs: []error{ErrClosed}, msg: "the leader is closing"},
	}
	f := &fakeLeader{script: notApplied}
	n := withFakeLeader(t, f)
	ctx := testCtxInternal(t)
	before := n.fsm.appliedIndex()
	rev, err := n.Put(ctx, "k", []byte("v"))
	if err != nil {
		t.Fatalf("Put = %v, want success after %d refusals", err, len(notApplied))
	}
	if got, want := f.callCount(), len(notApplied)+1; got != want {
		t.Fatalf("the leader was asked %d times, want %d", got, want)
	}
	if rev <= before || n.fsm.appliedIndex() != rev {
		t.Fatalf("the write landed at %d (applied %d, was %d): want exactly one new entry", rev, n.fsm.appliedIndex(), before)
	}
	f.script = []error{ErrNotLeader, ErrNoLeader}
	got, err := n.Get(ctx, "k")
	if err != nil || string(got.Value) != "v" {
		t.Fatalf("linearizable Get through the fake = %v, %v", got, err)
	}
}

// A write whose outcome is unknown, or that failed on its own merits, is
// never sent again: the caller gets the error of the one attempt.
func TestOnLeaderDoesNotResendWhatMayHaveApplied(t *testing.T) {
	for _, e := range []error{
		fmt.Errorf("%w: %w", ErrIndeterminate, ErrNotLeader),
		fmt.Errorf("%w: %w", ErrIndeterminate, errUnresponsive),
		ErrQuotaExceeded,
		ErrPermissionDenied,
		errRemoved,
	} {
		f := &fakeLeader{script: []error{e}}
		n := withFakeLeader(t, f)
		_, err := n.Put(testCtxInternal(t), "k", []byte("v"))
		if !errors.Is(err, e) {
			t.Errorf("leader answered %v: Put = %v, want that error", e, err)
		}
		if f.callCount() != 1 {
			t.Errorf("leader answered %v: asked %d times, want once", e, f.callCount())
		}
		if _, err := n.Get(context.Background(), "k", Stale()); !errors.Is(err, ErrNotFound) {
			t.Errorf("leader answered %v: the key exists (%v)", e, err)
		}
	}
}

// With no leader in sight, a call from another node gives up after its
// patience, not the caller's whole deadline, so the client behind it can
// try elsewhere; the embedding program's own call waits to its deadline.
func TestOnLeaderGivesUpAfterItsPatience(t *testing.T) {
	f := &fakeLeader{last: fmt.Errorf("%w: none", ErrNoLeader)}
	n := withFakeLeader(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	_, err := n.Put(withPatience(ctx, 300*time.Millisecond), "k", []byte("v"))
	if !errors.Is(err, ErrNoLeader) {
		t.Fatalf("Put = %v, want ErrNoLeader", err)
	}
	if ctx.Err() != nil || time.Since(start) > 30*time.Second {
		t.Fatalf("Put waited %v: its patience was 300ms", time.Since(start))
	}
	if f.callCount() < 2 {
		t.Fatalf("asked the leader %d times in its patience, want several", f.callCount())
	}
	short, cancel2 := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel2()
	if _, err := n.Put(short, "k", []byte("v")); !errors.Is(err, ErrNoLeader) || short.Err() == nil {
		t.Fatalf("Put without patience = %v before its deadline ended (%v), want ErrNoLeader at it", err, short.Err())
	}
}

// A node that closes while a call waits for a leader answers ErrClosed,
// and a write that may have been applied stays ErrIndeterminate.
func TestOnLeaderOnAClosingNode(t *testing.T) {
	f := &fakeLeader{last: fmt.Errorf("%w: none", ErrNoLeader)}
	n := withFakeLeader(t, f)
	var once sync.Once
	f.onCall = func(call int) {
		if call == 3 {
			once.Do(func() { go n.Close() })
		}
	}
	_, err := n.Put(testCtxInternal(t), "k", []byte("v"))
	if !errors.Is(err, ErrClosed) || errors.Is(err, ErrIndeterminate) {
		t.Fatalf("Put on a closing node = %v, want ErrClosed", err)
	}

	f = &fakeLeader{}
	n = withFakeLeader(t, f)
	f.script = []error{fmt.Errorf("%w: %w", ErrIndeterminate, errUnresponsive)}
	f.onCall = func(int) { n.Close() }
	_, err = n.Put(testCtxInternal(t), "k", []byte("v"))
	if !errors.Is(err, ErrIndeterminate) {
		t.Fatalf("write cut short by Close = %v, want ErrIndeterminate", err)
	}
}

func testCtxInternal(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
