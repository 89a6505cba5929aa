package skiff

import (
	"bytes"
	"context"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
)

// Codec turns values into the bytes a KV stores and back. Unmarshal is
// given a pointer to a zero value of the type to fill. Implementations must
// be safe for concurrent use; JSONCodec and GobCodec are. Protocol buffers,
// msgpack and the like plug in by implementing Codec.
type Codec interface {
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// JSONCodec encodes values with encoding/json. It is the default codec of
// NewTyped. Decoding follows encoding/json: unknown fields are ignored and
// missing ones keep their zero value, so structs may gain and lose fields
// over time.
type JSONCodec struct{}

// Marshal encodes v as JSON.
func (JSONCodec) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal decodes JSON data into v, a non-nil pointer.
func (JSONCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// GobCodec encodes values with encoding/gob, one self-describing value per
// call (each stored value carries its own type information). Gob is
// compact for numeric data and tolerates added and removed fields, but only
// Go programs can read it.
type GobCodec struct{}

// Marshal encodes v as a single gob value.
func (GobCodec) Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Unmarshal decodes a single gob value from data into v, a non-nil pointer.
func (GobCodec) Unmarshal(data []byte, v any) error {
	return gob.NewDecoder(bytes.NewReader(data)).Decode(v)
}

// DecodeError reports a stored value that the codec could not decode into
// the requested type. It matches both ErrDecode and the codec's error with
// errors.Is, and is itself found with errors.As.
type DecodeError struct {
	Key      string
	Revision uint64 // the ModRevision of the value that failed
	Err      error  // the codec's error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("%v: %q at revision %d: %v", ErrDecode, e.Key, e.Revision, e.Err)
}

// Unwrap returns ErrDecode and the codec's error.
func (e *DecodeError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrDecode}
	}
	return []error{ErrDecode, e.Err}
}

// Typed is a view of a KV that stores values of type T, encoded by a Codec.
// Keys, revisions, conditions and errors are those of the KV; Typed adds
// encoding on writes, decoding on reads, and Update.
//
// A Typed holds no state besides its KV and Codec, so it is safe for
// concurrent use whenever they are (Node, the network client and the
// codecs of this package all are), and any number of Typed views, of any
// types, may share one KV.
//
// On failure a method returns the zero T and an error: the KV's error
// unchanged, an error wrapping ErrInvalidArgument when a value cannot be
// encoded (nothing is written), or a *DecodeError when a stored value
// cannot be decoded.
type Typed[T any] struct {
	kv    KV
	codec Codec
}

// NewTyped returns a view of kv for values of type T. A nil codec means
// JSONCodec. It panics if kv is nil.
func NewTyped[T any](kv KV, codec Codec) *Typed[T] {
	if kv == nil {
		panic("skiff: NewTyped with a nil KV")
	}
	if codec == nil {
		codec = JSONCodec{}
	}
	return &Typed[T]{kv: kv, codec: codec}
}

// TypedEntry is one decoded entry of a typed List, with the revisions of
// KeyValue.
type TypedEntry[T any] struct {
	Key            string
	Value          T
	CreateRevision uint64
	ModRevision    uint64
	Version        uint64
}

// TypedListResult is one page of a typed List; More and Revision are as in
// ListResult.
type TypedListResult[T any] struct {
	Entries  []TypedEntry[T]
	More     bool
	Revision uint64
}

func (t *Typed[T]) encode(key string, v T) ([]byte, error) {
	data, err := t.codec.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: encode value of %q: %w", ErrInvalidArgument, key, err)
	}
	return data, nil
}

func (t *Typed[T]) decode(kv *KeyValue) (T, error) {
	var v T
	if err := t.codec.Unmarshal(kv.Value, &v); err != nil {
		var zero T
		return zero, &DecodeError{Key: kv.Key, Revision: kv.ModRevision, Err: err}
	}
	return v, nil
}

// Put encodes v and sets key to it, like KV.Put.
func (t *Typed[T]) Put(ctx context.Context, key string, v T) (revision uint64, err error) {
	data, err := t.encode(key, v)
	if err != nil {
		return 0, err
	}
	return t.kv.Put(ctx, key, data)
}

// Create encodes v and sets key to it only if key does not exist, like
// KV.Create: otherwise the error wraps ErrExists.
func (t *Typed[T]) Create(ctx context.Context, key string, v T) (revision uint64, err error) {
	data, err := t.encode(key, v)
	if err != nil {
		return 0, err
	}
	return t.kv.Create(ctx, key, data)
}

// CompareAndSwap encodes v and sets key to it only if the key's
// ModRevision is modRevision, like KV.CompareAndSwap: otherwise (including
// when the key is absent) the error wraps ErrRevisionMismatch.
func (t *Typed[T]) CompareAndSwap(ctx context.Context, key string, v T, modRevision uint64) (revision uint64, err error) {
	data, err := t.encode(key, v)
	if err != nil {
		return 0, err
	}
	return t.kv.CompareAndSwap(ctx, key, data, modRevision)
}

// Get returns key's decoded value and its KeyValue, whose Value holds the
// stored bytes and whose revisions can be passed to CompareAndSwap or
// DeleteIf. A missing key is an error wrapping ErrNotFound. When the value
// cannot be decoded, the error is a *DecodeError and the KeyValue is still
// returned, so the raw bytes can be inspected.
func (t *Typed[T]) Get(ctx context.Context, key string, opts ...ReadOption) (T, *KeyValue, error) {
	kv, err := t.kv.Get(ctx, key, opts...)
	if err != nil {
		var zero T
		return zero, nil, err
	}
	v, err := t.decode(kv)
	return v, kv, err
}

// Delete removes key, like KV.Delete. Deleting an absent key succeeds.
func (t *Typed[T]) Delete(ctx context.Context, key string) error {
	return t.kv.Delete(ctx, key)
}

// DeleteIf removes key only if its ModRevision is modRevision, like
// KV.DeleteIf: otherwise the error wraps ErrRevisionMismatch.
func (t *Typed[T]) DeleteIf(ctx context.Context, key string, modRevision uint64) error {
	return t.kv.DeleteIf(ctx, key, modRevision)
}

// List returns the decoded entries below prefix in ascending key order,
// read from one consistent revision, like KV.List; WithLimit, WithAfter
// and Stale apply. WithKeysOnly is refused with ErrInvalidArgument, since
// there would be no values to decode: use the KV's List for keys alone.
// If any value on the page cannot be decoded, List fails with a
// *DecodeError for the first such key and returns no entries.
func (t *Typed[T]) List(ctx context.Context, prefix string, opts ...ReadOption) (*TypedListResult[T], error) {
	o, err := collectReadOptions(opts)
	if err != nil {
		return nil, err
	}
	if o.keysOnly {
		return nil, fmt.Errorf("%w: WithKeysOnly in a typed List", ErrInvalidArgument)
	}
	res, err := t.kv.List(ctx, prefix, opts...)
	if err != nil {
		return nil, err
	}
	out := &TypedListResult[T]{
		Entries:  make([]TypedEntry[T], len(res.KVs)),
		More:     res.More,
		Revision: res.Revision,
	}
	for i := range res.KVs {
		kv := &res.KVs[i]
		v, err := t.decode(kv)
		if err != nil {
			return nil, err
		}
		out.Entries[i] = TypedEntry[T]{
			Key:            kv.Key,
			Value:          v,
			CreateRevision: kv.CreateRevision,
			ModRevision:    kv.ModRevision,
			Version:        kv.Version,
		}
	}
	return out, nil
}

// Update atomically replaces key's value with fn's result, and returns the
// new value and the revision it was written at. fn gets the current value
// and true, or the zero T and false when the key is absent.
//
// Update is an optimistic loop: it reads the key (linearizably), calls fn,
// and writes with Create or CompareAndSwap. When another writer got there
// first (ErrExists, ErrRevisionMismatch) it reads again and calls fn
// again, until a write succeeds or ctx ends; then the error wraps
// ErrTimeout and context.DeadlineExceeded, or context.Canceled. Give ctx a
// deadline: under endless contention nothing else stops the loop. fn may
// run several times and must not have effects outside its result. Of many
// concurrent Updates of one key, each that succeeds was applied exactly
// once, to the value the previous one left.
//
// Update stops at the first other error and returns it: one returned by
// fn (unchanged), a *DecodeError for a stored value it cannot decode, or
// the KV's error. In particular a write whose outcome is unknown
// (ErrIndeterminate) is never retried, since it may have been applied.
func (t *Typed[T]) Update(ctx context.Context, key string, fn func(old T, exists bool) (T, error)) (T, uint64, error) {
	var zero T
	for {
		old, kv, err := t.Get(ctx, key)
		exists := err == nil
		if err != nil && !errors.Is(err, ErrNotFound) {
			return zero, 0, err
		}
		v, err := fn(old, exists)
		if err != nil {
			return zero, 0, err
		}
		var rev uint64
		if exists {
			rev, err = t.CompareAndSwap(ctx, key, v, kv.ModRevision)
		} else {
			rev, err = t.Create(ctx, key, v)
		}
		if err == nil {
			return v, rev, nil
		}
		if !lostRace(err) {
			return zero, 0, err
		}
		if ctx.Err() != nil {
			return zero, 0, ctxError(ctx, fmt.Sprintf("update %q after a conflict", key))
		}
	}
}

// lostRace reports whether a conditional write failed only because another
// write came first, so that reading again and retrying is safe.
func lostRace(err error) bool {
	if errors.Is(err, ErrIndeterminate) {
		return false
	}
	return errors.Is(err, ErrRevisionMismatch) || errors.Is(err, ErrExists)
}

// TypedEvent is a watch Event with its value decoded. For a value that
// cannot be decoded, Value is the zero T and Err is a *DecodeError; the
// watch goes on. Raw is the event as received.
type TypedEvent[T any] struct {
	Type     EventType
	Key      string
	Value    T // zero for EventDelete and EventSynced
	Revision uint64
	Err      error
	Raw      Event
}

// TypedWatcher delivers a typed watch's events; see Watcher.
type TypedWatcher[T any] struct {
	w      *Watcher
	events chan TypedEvent[T]
	closed chan struct{} // events is closed
}

// Watch watches prefix like KV.Watch, decoding each value. Each event is
// decoded on its way to the caller, so Revision counts only the events
// the caller has received, as Watcher's does.
func (t *Typed[T]) Watch(ctx context.Context, prefix string, opts ...WatchOption) (*TypedWatcher[T], error) {
	tw := &TypedWatcher[T]{events: make(chan TypedEvent[T]), closed: make(chan struct{})}
	deliver := func(ctx context.Context, ev Event) error {
		te := TypedEvent[T]{Type: ev.Type, Key: ev.Key, Revision: ev.Revision, Raw: ev}
		if ev.Type == EventPut {
			kv := &KeyValue{Key: ev.Key, Value: ev.Value, ModRevision: ev.Revision}
			te.Value, te.Err = t.decode(kv)
		}
		select {
		case tw.events <- te:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	w, err := t.kv.Watch(ctx, prefix, append(opts, func(o *watchOptions) { o.deliver = deliver })...)
	if err != nil {
		return nil, err
	}
	tw.w = w
	go func() {
		<-w.done
		close(tw.events)
		close(tw.closed)
	}()
	return tw, nil
}

// Events returns the channel of decoded events, closed when the watch
// ends.
func (tw *TypedWatcher[T]) Events() <-chan TypedEvent[T] { return tw.events }

// Err returns why the watch ended; see Watcher.Err.
func (tw *TypedWatcher[T]) Err() error { return tw.w.Err() }

// Revision returns the resume revision; see Watcher.Revision.
func (tw *TypedWatcher[T]) Revision() uint64 { return tw.w.Revision() }

// Close ends the watch and waits for its resources to be released.
func (tw *TypedWatcher[T]) Close() {
	tw.w.Close()
	<-tw.closed
}
