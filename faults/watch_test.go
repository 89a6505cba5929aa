package faults

import (
	"fmt"
	"strings"
	"testing"

	"github.com/skiffkv/skiff"
)

func TestCheckWatch(t *testing.T) {
	ops := h(Op{Kind: Put, Key: "a", Value: "x", OutRev: 5}, Op{Kind: Put, Key: "b", Value: "y", OutRev: 7},
		Op{Kind: Put, Key: "a", Value: "u", Outcome: Unknown, Return: Never, Call: 30})
	put := func(k, v string, rev uint64) skiff.Event {
		return skiff.Event{Type: skiff.EventPut, Key: k, Value: []byte(v), Revision: rev}
	}
	tests := []struct {
		name string
		segs []*WatchSegment
		want string // a part of the error, "" for none
	}{
		{"every change", []*WatchSegment{{Synced: 4, Events: []skiff.Event{put("a", "x", 5), put("a", "u", 6), put("b", "y", 7)}}}, ""},
		{"resumed after a compaction", []*WatchSegment{{Synced: 4, Events: []skiff.Event{put("a", "x", 5)}, Err: &skiff.CompactedError{}},
			{Synced: 6, Events: []skiff.Event{put("b", "y", 7)}}}, ""},
		{"a gap", []*WatchSegment{{Synced: 4, Events: []skiff.Event{put("b", "y", 7)}}}, "misses"},
		{"a repeat", []*WatchSegment{{Synced: 4, Events: []skiff.Event{put("a", "x", 5), put("a", "x", 5)}}}, "after revision 5"},
		{"out of order", []*WatchSegment{{Synced: 4, Events: []skiff.Event{put("b", "y", 7), put("a", "x", 5)}}}, "after revision 7"},
		{"another value", []*WatchSegment{{Synced: 4, Events: []skiff.Event{put("a", "z", 5)}}}, "acknowledged"},
		{"a value never written", []*WatchSegment{{Synced: 5, Events: []skiff.Event{put("a", "z", 6)}}}, "no such write"},
		{"ended by an error", []*WatchSegment{{Synced: 4, Err: fmt.Errorf("%w: gone", skiff.ErrUnavailable)}}, "ended with"},
		{"ended while sending its initial state", []*WatchSegment{{Err: fmt.Errorf("%w: replaced", skiff.ErrUnavailable)},
			{Synced: 4, Events: []skiff.Event{put("a", "x", 5)}}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckWatch(tt.segs, ops)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("CheckWatch = %v, want %q", err, tt.want)
			}
		})
	}
}
