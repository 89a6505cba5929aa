package store

import (
	"reflect"
	"slices"
	"testing"
)

// viewWith returns a view holding keys, each with its own name as value,
// committed at revision 1.
func viewWith(keys ...string) *View {
	s := New()
	txn := s.Txn()
	for _, k := range keys {
		txn.Put(k, []byte(k), 1)
	}
	txn.Commit(1)
	return s.View()
}

func TestGet(t *testing.T) {
	v := viewWith("a", "a/b", "ab")
	tests := []struct {
		key    string
		wantOK bool
	}{
		{"a", true}, {"a/b", true}, {"ab", true},
		{"", false}, {"a/", false}, {"b", false}, {"a/b/c", false},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			got, ok := v.Get(tt.key)
			if ok != tt.wantOK || ok && (got.Key != tt.key || string(got.Value) != tt.key) {
				t.Errorf("Get(%q) = %s, want found %v", tt.key, fmtEntry(got, ok), tt.wantOK)
			}
		})
	}
}

func TestRange(t *testing.T) {
	v := viewWith("parent", "parent-x", "parent.y", "parent/a", "parent/b/c", "parent/b/d",
		"parent0", "parents/x", "zeta")
	tests := []struct {
		name          string
		prefix, after string
		stopAfter     int // fn returns false after this many; 0: never
		want          []string
	}{
		{"segment", "parent", "", 0, []string{"parent/a", "parent/b/c", "parent/b/d"}},
		{"trailing slash", "parent/", "", 0, []string{"parent/a", "parent/b/c", "parent/b/d"}},
		{"all", "", "", 0, []string{"parent", "parent-x", "parent.y", "parent/a", "parent/b/c", "parent/b/d",
			"parent0", "parents/x", "zeta"}},
		{"nested", "parent/b", "", 0, []string{"parent/b/c", "parent/b/d"}},
		{"after key", "parent", "parent/a", 0, []string{"parent/b/c", "parent/b/d"}},
		{"after missing key", "parent", "parent/b", 0, []string{"parent/b/c", "parent/b/d"}},
		{"after below prefix", "parent", "a", 0, []string{"parent/a", "parent/b/c", "parent/b/d"}},
		{"after past prefix", "parent", "parent0", 0, nil},
		{"after last", "parent", "parent/b/d", 0, nil},
		{"after on all", "", "parent0", 0, []string{"parents/x", "zeta"}},
		{"stop early", "parent", "", 2, []string{"parent/a", "parent/b/c"}},
		{"no such prefix", "paren", "", 0, nil},
		{"key is not its own dir", "zeta", "", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			v.Range(tt.prefix, tt.after, func(ent Entry) bool {
				got = append(got, ent.Key)
				return tt.stopAfter == 0 || len(got) < tt.stopAfter
			})
			if !slices.Equal(got, tt.want) {
				t.Errorf("Range(%q, %q) = %q, want %q", tt.prefix, tt.after, got, tt.want)
			}
		})
	}
}

func TestChildren(t *testing.T) {
	// '-' and '.' sort before '/', so the keys of a child are not
	// contiguous: "a/b-c" lies between "a/b" and "a/b/c".
	v := viewWith("a/b", "a/b/c", "a/b-c", "a/d",
		"x/b-c", "x/b.d", "x/b/c", // x/b is only a directory
		"p/q-r/s", "p/q/t", // neither p/q nor p/q-r is a key
		"top")
	b := Child{Name: "b", IsKey: true, HasChildren: true}
	bc := Child{Name: "b-c", IsKey: true}
	d := Child{Name: "d", IsKey: true}
	xb := Child{Name: "b", HasChildren: true}
	xbd := Child{Name: "b.d", IsKey: true}
	tests := []struct {
		prefix, after string
		limit         int
		want          []Child
	}{
		{"a", "", 0, []Child{b, bc, d}},
		{"a/", "", 0, []Child{b, bc, d}},
		{"a", "", 1, []Child{b}},
		{"a", "", 2, []Child{b, bc}},
		{"a", "b", 0, []Child{bc, d}},
		{"a", "b", 1, []Child{bc}},
		{"a", "b-", 0, []Child{bc, d}},
		{"a", "b-c", 0, []Child{d}},
		{"a", "b/c", 0, []Child{d}}, // after is compared as a string: "b-c" < "b/c"

		{"a", "c", 0, []Child{d}},
		{"a", "d", 0, nil},
		{"a/b", "", 0, []Child{{Name: "c", IsKey: true}}},
		{"a/d", "", 0, nil},
		{"x", "", 0, []Child{xb, bc, xbd}},
		{"x", "b", 0, []Child{bc, xbd}},
		{"x", "b-c", 0, []Child{xbd}},
		{"x", "", 2, []Child{xb, bc}},
		{"p", "", 0, []Child{{Name: "q", HasChildren: true}, {Name: "q-r", HasChildren: true}}},
		{"p", "q", 0, []Child{{Name: "q-r", HasChildren: true}}},
		{"", "", 0, []Child{{Name: "a", HasChildren: true}, {Name: "p", HasChildren: true},
			{Name: "top", IsKey: true}, {Name: "x", HasChildren: true}}},
		{"", "p", 0, []Child{{Name: "top", IsKey: true}, {Name: "x", HasChildren: true}}},
		{"missing", "", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.prefix+"|"+tt.after, func(t *testing.T) {
			got := v.Children(tt.prefix, tt.after, tt.limit)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Children(%q, %q, %d) = %+v, want %+v", tt.prefix, tt.after, tt.limit, got, tt.want)
			}
		})
	}
}

func TestPrefixes(t *testing.T) {
	tests := []struct {
		name string
		keys []string
		want []string
	}{
		{"empty", nil, nil},
		{"flat keys only", []string{"a", "b"}, nil},
		{"mixed", []string{"users/alice", "users/bob", "greeting", "users"}, []string{"users"}},
		{"dash sorts before slash", []string{"a-b/x", "a/y", "a.c", "zz", "a0/z"}, []string{"a", "a-b", "a0"}},
		{"directory only after its dashed sibling", []string{"a-b", "a/c"}, []string{"a"}},
		{"deep", []string{"n/a/b/c", "n/d"}, []string{"n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := viewWith(tt.keys...).Prefixes()
			if !slices.Equal(got, tt.want) {
				t.Errorf("Prefixes() of %q = %q, want %q", tt.keys, got, tt.want)
			}
		})
	}
}

// EachPrefix continues after a given namespace, as a paged listing does,
// and stops when told to.
func TestEachPrefixAfter(t *testing.T) {
	v := viewWith("a-b/x", "a/y", "a.c", "zz", "a0/z", "m/1", "m-/2")
	var all []string
	v.EachPrefix("", func(p string) bool { all = append(all, p); return true })
	for i := range all {
		var rest []string
		v.EachPrefix(all[i], func(p string) bool { rest = append(rest, p); return len(rest) < 2 })
		want := all[i+1 : min(i+3, len(all))]
		if !slices.Equal(rest, want) && !(len(rest) == 0 && len(want) == 0) {
			t.Errorf("EachPrefix(%q) stopping at 2 = %q, want %q", all[i], rest, want)
		}
	}
	if want := []string{"a", "a-b", "a0", "m", "m-"}; !slices.Equal(all, want) {
		t.Errorf("EachPrefix(\"\") = %q, want %q", all, want)
	}
}
