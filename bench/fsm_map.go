package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"sync"

	"github.com/hashicorp/raft"
)

// mapFSM is the trivial state machine of the bare-raft systems: a map
// under a lock, one lock round per applied batch. A command is a sequence
// of puts, each a uvarint-prefixed key and value.
type mapFSM struct {
	mu sync.RWMutex
	m  map[string][]byte
}

var _ raft.BatchingFSM = (*mapFSM)(nil)

func newMapFSM() *mapFSM { return &mapFSM{m: map[string][]byte{}} }

func encodePuts(buf []byte, keys []string, value []byte) []byte {
	for _, k := range keys {
		buf = binary.AppendUvarint(buf, uint64(len(k)))
		buf = append(buf, k...)
		buf = binary.AppendUvarint(buf, uint64(len(value)))
		buf = append(buf, value...)
	}
	return buf
}

// decodePuts calls f for each put in b; values alias b.
func decodePuts(b []byte, f func(key string, value []byte)) error {
	field := func() ([]byte, error) {
		n, w := binary.Uvarint(b)
		if w <= 0 || uint64(len(b)-w) < n {
			return nil, errors.New("malformed command")
		}
		out := b[w : w+int(n)]
		b = b[w+int(n):]
		return out, nil
	}
	for len(b) > 0 {
		k, err := field()
		if err != nil {
			return err
		}
		v, err := field()
		if err != nil {
			return err
		}
		f(string(k), v)
	}
	return nil
}

func (f *mapFSM) get(key string) []byte {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.m[key]
}

func (f *mapFSM) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

func (f *mapFSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		// One copy per entry: the log store may reuse l.Data.
		data := append([]byte(nil), l.Data...)
		out[i] = decodePuts(data, func(k string, v []byte) { f.m[k] = v })
	}
	return out
}

// Snapshot copies the map; values are never modified in place, so a
// shallow copy is a consistent snapshot.
func (f *mapFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	m := make(map[string][]byte, len(f.m))
	for k, v := range f.m {
		m[k] = v
	}
	return mapSnapshot(m), nil
}

func (f *mapFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	m := map[string][]byte{}
	if err := decodePuts(b, func(k string, v []byte) { m[k] = v }); err != nil {
		return err
	}
	f.mu.Lock()
	f.m = m
	f.mu.Unlock()
	return nil
}

type mapSnapshot map[string][]byte

func (s mapSnapshot) Persist(sink raft.SnapshotSink) error {
	w := bufio.NewWriterSize(sink, 1<<20)
	var buf []byte
	for k, v := range s {
		buf = encodePuts(buf[:0], []string{k}, v)
		if _, err := w.Write(buf); err != nil {
			sink.Cancel()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s mapSnapshot) Release() {}
