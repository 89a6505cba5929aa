package faults

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// The model is skiff's revisioned KV as a sequential specification for
// porcupine. It is built for one history: keys and values are interned
// into small integers so that a state is a fixed-size comparable struct,
// which porcupine compares with == and caches cheaply.

// maxKeys bounds the keys a history may touch; the state is an array.
const maxKeys = 8

// noRev is the upper bound of an unknown revision that nothing follows yet.
const noRev = math.MaxUint64

// rev is a revision the model knows (v > 0), or the unknown revision of
// the write id, which lies strictly between lo and hi: lo is what the
// model knew had been written before it, hi the first known revision
// written after it.
type rev struct {
	v      uint64
	id     uint32
	lo, hi uint64
}

func (r rev) known() bool { return r.v > 0 }

// keyState is one key. value 0 means absent; the revisions are then zero.
type keyState struct {
	value   uint32
	version uint64
	create  rev
	mod     rev
}

// state is the whole store plus last, a lower bound on the last revision
// written: every write linearized later must return a revision above it.
type state struct {
	keys [maxKeys]keyState
	last uint64
}

// cop is an Op compiled for the model: key and values as indexes.
type cop struct {
	op     *Op
	kind   Kind
	key    int
	value  uint32
	rev    uint64
	out    Outcome
	mm     bool
	outRev uint64
	nf     bool
	got    keyState   // a get's answer, revisions known
	listed []keyState // a list's answer, one per key (value 0: absent)
	id     uint32     // the op's index, naming its revision while unknown
}

// step applies c to s. It returns false when c could not have happened in
// state s.
func step(s state, c *cop) (bool, state) {
	switch c.kind {
	case Get:
		return observe(s, c.key, c.got)
	case List:
		for k, want := range c.listed {
			var ok bool
			if ok, s = observe(s, k, want); !ok {
				return false, s
			}
		}
		return true, s
	}
	ks := s.keys[c.key]
	if c.out == Failed {
		// Only Mismatch failures reach the model (see compile): the
		// condition must have been false.
		return conditionFails(s, c, ks)
	}
	ok, s2 := conditionHolds(s, c)
	if !ok {
		// A write of unknown outcome whose condition fails here changes
		// nothing if it is placed here.
		return c.out == Unknown, s
	}
	s = s2
	switch c.kind {
	case Delete, DeleteIf:
		s.keys[c.key] = keyState{}
		return true, s
	}
	r := rev{v: c.outRev}
	if c.out == Unknown {
		r = rev{id: c.id, lo: s.last, hi: noRev}
	} else {
		if c.outRev <= s.last {
			return false, s
		}
		var ok bool
		if ok, s = bound(s, c.outRev); !ok {
			return false, s
		}
		s.last = c.outRev
	}
	ks = s.keys[c.key]
	if ks.value == 0 {
		ks.create, ks.version = r, 0
	}
	ks.value, ks.mod, ks.version = c.value, r, ks.version+1
	s.keys[c.key] = ks
	return true, s
}

// conditionHolds checks a conditional write that took effect (or, for an
// unknown outcome, is assumed to have) and pins an unknown ModRevision
// that the condition names.
func conditionHolds(s state, c *cop) (bool, state) {
	ks := s.keys[c.key]
	switch c.kind {
	case Create:
		return ks.value == 0, s
	case CAS, DeleteIf:
		if ks.value == 0 {
			return false, s
		}
		return pin(s, ks.mod, c.rev)
	}
	return true, s
}

// conditionFails checks a write that failed because its condition did not
// hold. An unknown ModRevision may or may not be the one named; the model
// accepts either rather than split the state.
func conditionFails(s state, c *cop, ks keyState) (bool, state) {
	switch c.kind {
	case Create:
		return ks.value != 0, s
	case CAS, DeleteIf:
		return ks.value == 0 || !ks.mod.known() || ks.mod.v != c.rev, s
	}
	return false, s // Put and Delete have no condition to fail
}

// observe checks that key k is as a read saw it, pinning unknown
// revisions to the ones the read reports.
func observe(s state, k int, want keyState) (bool, state) {
	ks := s.keys[k]
	if ks.value != want.value || ks.version != want.version {
		return false, s
	}
	if want.value == 0 {
		return true, s
	}
	ok, s := pin(s, ks.create, want.create.v)
	if !ok {
		return false, s
	}
	return pin(s, s.keys[k].mod, want.mod.v)
}

// pin checks that r may be revision v; if r is unknown it becomes v
// wherever it appears in s.
func pin(s state, r rev, v uint64) (bool, state) {
	if r.known() {
		return r.v == v, s
	}
	if v <= r.lo || v >= r.hi {
		return false, s
	}
	for i := range s.keys {
		ks := &s.keys[i]
		if !ks.create.known() && ks.create.id == r.id && ks.value != 0 {
			ks.create = rev{v: v}
		}
		if !ks.mod.known() && ks.mod.id == r.id && ks.value != 0 {
			ks.mod = rev{v: v}
		}
		if ks.value != 0 && ks.create.known() && ks.mod.known() && ks.create.v > ks.mod.v {
			return false, s
		}
	}
	s.last = max(s.last, v)
	return true, s
}

// bound records that a write at v follows every unknown revision in s,
// and fails if one of them has no room left below v.
func bound(s state, v uint64) (bool, state) {
	for i := range s.keys {
		ks := &s.keys[i]
		if ks.value == 0 {
			continue
		}
		for _, r := range []*rev{&ks.create, &ks.mod} {
			if r.known() {
				continue
			}
			r.hi = min(r.hi, v)
			if r.lo+1 >= r.hi {
				return false, s
			}
		}
	}
	return true, s
}

// hash mixes a state's fields (FNV-1a over the words).
func hash(s state) uint64 {
	h := uint64(14695981039346656037)
	mix := func(x uint64) { h = (h ^ x) * 1099511628211 }
	mix(s.last)
	for _, ks := range s.keys {
		mix(uint64(ks.value))
		mix(ks.version)
		for _, r := range []rev{ks.create, ks.mod} {
			mix(r.v)
			mix(uint64(r.id))
			mix(r.lo)
			mix(r.hi)
		}
	}
	return h
}

// describer names keys and values for porcupine's visualization.
type describer struct {
	keys   []string
	values []string // by value id; values[0] is unused
}

func (d describer) op(c *cop) string {
	o := c.op
	var b strings.Builder
	fmt.Fprintf(&b, "c%d %s", o.Client, o.Kind)
	if o.Kind != List {
		fmt.Fprintf(&b, " %s", o.Key)
	}
	if o.Value != "" {
		fmt.Fprintf(&b, "=%s", o.Value)
	}
	if o.Kind == CAS || o.Kind == DeleteIf {
		fmt.Fprintf(&b, " if@%d", o.Rev)
	}
	switch {
	case o.Outcome == Unknown:
		b.WriteString(" → unknown")
	case o.Outcome == Failed:
		fmt.Fprintf(&b, " → failed (%s)", o.Err)
	case o.Kind == Get && o.NotFound:
		b.WriteString(" → not found")
	case o.Kind == Get:
		fmt.Fprintf(&b, " → %s", d.entry(c.got))
	case o.Kind == List:
		fmt.Fprintf(&b, " → %d keys", len(o.Listed))
	case o.OutRev > 0:
		fmt.Fprintf(&b, " → @%d", o.OutRev)
	default:
		b.WriteString(" → ok")
	}
	return b.String()
}

func (d describer) entry(ks keyState) string {
	if ks.value == 0 {
		return "absent"
	}
	return fmt.Sprintf("%s c%s m%s v%d", d.values[ks.value], revString(ks.create), revString(ks.mod), ks.version)
}

func revString(r rev) string {
	if r.known() {
		return fmt.Sprint(r.v)
	}
	hi := "∞"
	if r.hi != noRev {
		hi = fmt.Sprint(r.hi)
	}
	return fmt.Sprintf("?(%d,%s)", r.lo, hi)
}

func (d describer) state(s state) string {
	var parts []string
	for k, name := range d.keys {
		if s.keys[k].value != 0 {
			parts = append(parts, fmt.Sprintf("%s=%s", name, d.entry(s.keys[k])))
		}
	}
	sort.Strings(parts)
	return fmt.Sprintf("last≥%d {%s}", s.last, strings.Join(parts, ", "))
}
