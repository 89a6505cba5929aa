package process

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/skiffkv/skiff/faults"
)

// linearizeTimeout bounds the linearizability search of one run.
const linearizeTimeout = 2 * time.Minute

// historyResult is what the fault suite's shared checker found in a run's
// whole history.
type historyResult struct {
	// err is faults.CheckLinearizable's answer: nil, ErrNotLinearizable
	// naming the visualization, or ErrCheckTimeout.
	err  error
	lost []faults.Op // acknowledged writes that later reads show forgotten
	took time.Duration
}

// checkHistory checks a run's whole history with the checker both tiers
// share: linearizability over the model of the revisioned KV, and
// acknowledged writes that a later read shows were lost. dir receives the
// visualization of a violation. The invariants below are weaker, and need
// no search; the two together say both "something is wrong" and what.
func checkHistory(ops []faults.Op, dir string) historyResult {
	start := time.Now()
	err := faults.CheckLinearizable(ops, faults.CheckOptions{Dir: dir, Name: "linearizability", Timeout: linearizeTimeout})
	return historyResult{err: err, lost: faults.LostWrites(ops), took: time.Since(start)}
}

// failures returns one message per problem the checker found; a search
// that ran out of time is one too, since it proves nothing.
func (h historyResult) failures() []string {
	var out []string
	if h.err != nil {
		out = append(out, fmt.Sprintf("linearizability: %v", h.err))
	}
	for _, w := range h.lost {
		out = append(out, fmt.Sprintf("lost acknowledged write: %s", describe(w)))
	}
	return out
}

// violation is one broken invariant. lost marks an acknowledged write the
// final state does not explain.
type violation struct {
	lost bool
	msg  string
}

func isWrite(k faults.Kind) bool { return isValueWrite(k) || isDelete(k) }

func isValueWrite(k faults.Kind) bool {
	return k == faults.Put || k == faults.Create || k == faults.CAS
}

func isDelete(k faults.Kind) bool { return k == faults.Delete || k == faults.DeleteIf }

// precedes reports whether a returned before b was called, so that any
// linearization puts a first. An operation of unknown outcome never
// returned.
func precedes(a, b faults.Op) bool { return a.Return != faults.Never && a.Return < b.Call }

// checkFinal checks the final state of each key (nil: absent) against
// the writes of the history. Every written value is unique, so a value
// names the write that wrote it. That write must not have failed, and
// must not precede a write that was acknowledged: the later write would
// have replaced it. An absent key needs a delete that may have taken
// effect after every acknowledged write of a value. A write whose outcome
// is unknown may or may not have happened, so it explains a state but
// never has to.
func checkFinal(ops []faults.Op, final map[string]*faults.Entry) []violation {
	writes := map[string][]faults.Op{}
	for _, op := range ops {
		if isWrite(op.Kind) {
			writes[op.Key] = append(writes[op.Key], op)
		}
	}
	keys := make([]string, 0, len(writes))
	for k := range writes {
		keys = append(keys, k)
	}
	for k := range final {
		if _, ok := writes[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var out []violation
	for _, k := range keys {
		if e := final[k]; e != nil {
			out = append(out, checkValue(k, e, writes[k])...)
		} else {
			out = append(out, checkAbsent(k, writes[k])...)
		}
	}
	return out
}

// checkValue checks a key that finally holds e.
func checkValue(key string, e *faults.Entry, writes []faults.Op) []violation {
	i := slices.IndexFunc(writes, func(w faults.Op) bool { return isValueWrite(w.Kind) && w.Value == e.Value })
	if i < 0 {
		return []violation{{msg: fmt.Sprintf("%s finally holds %q (mod revision %d), which no write wrote", key, e.Value, e.Mod)}}
	}
	w := writes[i]
	switch {
	case w.Outcome == faults.Failed:
		return []violation{{msg: fmt.Sprintf("%s finally holds %q, written by %s, which failed", key, e.Value, describe(w))}}
	case w.Outcome == faults.OK && w.OutRev != e.Mod:
		return []violation{{msg: fmt.Sprintf("%s finally holds %q at mod revision %d, but %s returned revision %d",
			key, e.Value, e.Mod, describe(w), w.OutRev)}}
	}
	var out []violation
	for _, later := range writes {
		if later.Outcome == faults.OK && precedes(w, later) {
			out = append(out, violation{lost: true, msg: fmt.Sprintf("%s finally holds %q from %s; the later acknowledged %s is lost",
				key, e.Value, describe(w), describe(later))})
		}
	}
	return out
}

// checkAbsent checks a key that is finally absent.
func checkAbsent(key string, writes []faults.Op) []violation {
	var acked []faults.Op // acknowledged writes of a value
	for _, w := range writes {
		if isValueWrite(w.Kind) && w.Outcome == faults.OK {
			acked = append(acked, w)
		}
	}
	if len(acked) == 0 {
		return nil
	}
	for _, d := range writes {
		if isDelete(d.Kind) && d.Outcome != faults.Failed &&
			!slices.ContainsFunc(acked, func(v faults.Op) bool { return precedes(d, v) }) {
			return nil // d may come after every acknowledged value
		}
	}
	last := slices.MaxFunc(acked, func(a, b faults.Op) int { return cmp.Compare(a.Return, b.Return) })
	return []violation{{lost: true, msg: fmt.Sprintf("%s is finally absent, and no delete that may have happened comes after the acknowledged %s",
		key, describe(last))}}
}

// checkReads checks what each successful read saw: a value some write
// wrote, a write that did not fail and was called before the read
// returned, at the revision the write returned.
func checkReads(ops []faults.Op) []violation {
	byValue := map[string]faults.Op{}
	for _, op := range ops {
		if isValueWrite(op.Kind) {
			byValue[op.Value] = op
		}
	}
	var out []violation
	for _, r := range ops {
		if r.Outcome != faults.OK || (r.Kind != faults.Get && r.Kind != faults.List) {
			continue
		}
		seen := r.Listed
		if r.Kind == faults.Get && !r.NotFound {
			seen = []faults.Entry{r.Got}
		}
		for _, e := range seen {
			w, ok := byValue[e.Value]
			switch {
			case !ok || w.Key != e.Key:
				out = append(out, violation{msg: fmt.Sprintf("%s saw %s = %q, which no write wrote", describe(r), e.Key, e.Value)})
			case w.Outcome == faults.Failed:
				out = append(out, violation{msg: fmt.Sprintf("%s saw %q, written by %s, which failed", describe(r), e.Value, describe(w))})
			case precedes(r, w):
				out = append(out, violation{msg: fmt.Sprintf("%s saw %q before %s wrote it", describe(r), e.Value, describe(w))})
			case w.Outcome == faults.OK && w.OutRev != e.Mod:
				out = append(out, violation{msg: fmt.Sprintf("%s saw %q at mod revision %d; %s returned %d",
					describe(r), e.Value, e.Mod, describe(w), w.OutRev)})
			}
		}
	}
	return out
}

// checkStale checks that no successful read missed a write acknowledged
// before it was called. A read saw the value of write x, or no value: it
// is stale if an acknowledged write w to the key returned before the read
// was called and, for a value, x returned before w was called (w replaced
// it for good: values are never written twice), or, for no value, w wrote
// a value and no delete may have come between w and the read.
func checkStale(ops []faults.Op) []violation {
	writes := map[string][]faults.Op{}
	byValue := map[string]faults.Op{}
	for _, op := range ops {
		if isWrite(op.Kind) {
			writes[op.Key] = append(writes[op.Key], op)
		}
		if isValueWrite(op.Kind) {
			byValue[op.Value] = op
		}
	}
	var out []violation
	for _, r := range ops {
		if r.Outcome != faults.OK || (r.Kind != faults.Get && r.Kind != faults.List) {
			continue
		}
		for key, ws := range writes {
			if r.Kind == faults.Get && key != r.Key {
				continue
			}
			e, found := readOf(r, key)
			x, known := byValue[e.Value] // checkReads reports a value nobody wrote
			for _, w := range ws {
				if w.Outcome != faults.OK || !precedes(w, r) {
					continue
				}
				if found && known && precedes(x, w) {
					out = append(out, violation{msg: fmt.Sprintf("%s saw %q, which the earlier %s had replaced", describe(r), e.Value, describe(w))})
				}
				if !found && isValueWrite(w.Kind) && !mayDeleteBetween(ws, w, r) {
					out = append(out, violation{msg: fmt.Sprintf("%s found no %s after %s", describe(r), key, describe(w))})
				}
			}
		}
	}
	return out
}

// readOf returns what read r saw of key.
func readOf(r faults.Op, key string) (faults.Entry, bool) {
	if r.Kind == faults.Get {
		return r.Got, !r.NotFound
	}
	for _, e := range r.Listed {
		if e.Key == key {
			return e, true
		}
	}
	return faults.Entry{}, false
}

// mayDeleteBetween reports whether a delete in ws may have taken effect
// after w and before r.
func mayDeleteBetween(ws []faults.Op, w, r faults.Op) bool {
	return slices.ContainsFunc(ws, func(d faults.Op) bool {
		return isDelete(d.Kind) && d.Outcome != faults.Failed && !precedes(d, w) && !precedes(r, d)
	})
}

// describe names an operation for a failure message.
func describe(op faults.Op) string {
	ret := "never returned"
	if op.Return != faults.Never {
		ret = fmt.Sprintf("returned %v", time.Duration(op.Return).Round(time.Millisecond))
	}
	s := fmt.Sprintf("%s(%s", op.Kind, op.Key)
	if op.Value != "" {
		s += fmt.Sprintf(", %q", op.Value)
	}
	if op.Rev != 0 {
		s += fmt.Sprintf(", rev %d", op.Rev)
	}
	s += fmt.Sprintf(") by client %d, called %v, %s: %s", op.Client, time.Duration(op.Call).Round(time.Millisecond), ret, op.Outcome)
	if op.Err != "" {
		s += " (" + op.Err + ")"
	}
	return s
}
