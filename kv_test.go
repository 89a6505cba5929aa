package skiff_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/skiffkv/skiff"
	"github.com/skiffkv/skiff/skifftest"
)

func TestConditionalWrites(t *testing.T) {
	c := skifftest.NewCluster(t, 3, nil)
	ctx := testCtx(t)
	n := c.Follower() // every call goes through forwarding

	rev1, err := n.Create(ctx, "cfg/a", []byte("1"))
	if err != nil {
		t.Fatalf("Create(new): %v", err)
	}
	_, err = n.Create(ctx, "cfg/a", []byte("2"))
	wantErr(t, "Create(existing)", err, skiff.ErrExists)

	_, err = n.CompareAndSwap(ctx, "cfg/a", []byte("x"), rev1+100)
	wantErr(t, "CompareAndSwap(wrong revision)", err, skiff.ErrRevisionMismatch)
	_, err = n.CompareAndSwap(ctx, "cfg/missing", []byte("x"), rev1)
	wantErr(t, "CompareAndSwap(absent key)", err, skiff.ErrRevisionMismatch)
	rev2, err := n.CompareAndSwap(ctx, "cfg/a", []byte("2"), rev1)
	if err != nil || rev2 <= rev1 {
		t.Fatalf("CompareAndSwap(right revision) = %d, %v; want a revision after %d", rev2, err, rev1)
	}
	kv, err := n.Get(ctx, "cfg/a")
	if err != nil {
		t.Fatal(err)
	}
	want := skiff.KeyValue{Key: "cfg/a", Value: []byte("2"), CreateRevision: rev1, ModRevision: rev2, Version: 2}
	if !reflect.DeepEqual(*kv, want) {
		t.Fatalf("Get(cfg/a) = %+v, want %+v", *kv, want)
	}

	wantErr(t, "DeleteIf(old revision)", n.DeleteIf(ctx, "cfg/a", rev1), skiff.ErrRevisionMismatch)
	if err := n.DeleteIf(ctx, "cfg/a", rev2); err != nil {
		t.Fatalf("DeleteIf(current revision): %v", err)
	}
	_, err = n.Get(ctx, "cfg/a")
	wantErr(t, "Get after DeleteIf", err, skiff.ErrNotFound)
	wantErr(t, "DeleteIf(absent)", n.DeleteIf(ctx, "cfg/a", rev2), skiff.ErrRevisionMismatch)
	if err := n.Delete(ctx, "cfg/a"); err != nil {
		t.Fatalf("Delete(absent): %v, want success", err)
	}

	// A re-created key starts a new life: new create revision, version 1.
	rev3, err := n.Create(ctx, "cfg/a", []byte("3"))
	if err != nil {
		t.Fatalf("Create after delete: %v", err)
	}
	kv, _ = n.Get(ctx, "cfg/a")
	if kv.CreateRevision != rev3 || kv.Version != 1 {
		t.Fatalf("Get(cfg/a) after re-create = %+v, want CreateRevision %d Version 1", kv, rev3)
	}
}

func TestPrefixesAreSegmentAware(t *testing.T) {
	c := skifftest.NewCluster(t, 1, nil)
	n := c.Node(0)
	ctx := testCtx(t)
	for _, k := range []string{"parent", "parent/a", "parent/b/c", "parents/x", "parent-x/y", "parent.z", "top"} {
		if _, err := n.Put(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	for _, prefix := range []string{"parent", "parent/"} {
		res, err := n.List(ctx, prefix)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := keys(res), []string{"parent/a", "parent/b/c"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("List(%q) = %q, want %q", prefix, got, want)
		}
	}
	res, err := n.List(ctx, "")
	if err != nil || len(res.KVs) != 7 {
		t.Fatalf("List(\"\") = %v, %v; want 7 keys", res, err)
	}
	page, err := n.List(ctx, "", skiff.WithLimit(3), skiff.WithKeysOnly())
	if err != nil || len(page.KVs) != 3 || !page.More || page.KVs[0].Value != nil {
		t.Fatalf("List(limit 3, keys only) = %+v, %v", page, err)
	}
	next, err := n.List(ctx, "", skiff.WithAfter(page.KVs[2].Key))
	if err != nil || len(next.KVs) != 4 || next.More {
		t.Fatalf("List(after %q) = %+v, %v; want the other 4", page.KVs[2].Key, next, err)
	}
	children, err := n.Children(ctx, "parent")
	if err != nil {
		t.Fatal(err)
	}
	wantChildren := []skiff.Child{{Name: "a", IsKey: true}, {Name: "b", HasChildren: true}}
	if !reflect.DeepEqual(children, wantChildren) {
		t.Fatalf("Children(parent) = %+v, want %+v", children, wantChildren)
	}
	prefixes, err := n.Prefixes(ctx)
	if want := []string{"parent", "parent-x", "parents"}; err != nil || !reflect.DeepEqual(prefixes, want) {
		t.Fatalf("Prefixes() = %q, %v; want %q", prefixes, err, want)
	}
}

func keys(res *skiff.ListResult) []string {
	var out []string
	for _, kv := range res.KVs {
		out = append(out, kv.Key)
	}
	return out
}

func TestBadInputIsRejectedAndChangesNothing(t *testing.T) {
	c := skifftest.NewCluster(t, 3, &skifftest.Options{Configure: func(i int, cfg *skiff.Config) {
		cfg.MaxKeySize = 64
		cfg.MaxValueSize = 128
	}})
	ctx := testCtx(t)
	leader, follower := c.Leader(), c.Follower()
	// A linearizable read waits until the new leader has committed its
	// own first entry, so the commit index below is settled.
	if _, err := leader.Get(ctx, "settled"); !errors.Is(err, skiff.ErrNotFound) {
		t.Fatalf("Get(settled) = %v, want ErrNotFound", err)
	}
	before := leader.Status().CommitIndex
	cases := []struct {
		name  string
		key   string
		value []byte
		want  error
	}{
		{"empty key", "", nil, skiff.ErrInvalidKey},
		{"leading slash", "/a", nil, skiff.ErrInvalidKey},
		{"trailing slash", "a/", nil, skiff.ErrInvalidKey},
		{"empty segment", "a//b", nil, skiff.ErrInvalidKey},
		{"invalid utf-8", "a/\xff", nil, skiff.ErrInvalidKey},
		{"control character", "a\nb", nil, skiff.ErrInvalidKey},
		{"C1 control", "a\u0085b", nil, skiff.ErrInvalidKey},
		{"bidi override", "users/\u202Eevil", nil, skiff.ErrInvalidKey},
		{"bidi isolate", "a\u2066b", nil, skiff.ErrInvalidKey},
		{"zero-width space", "ad\u200Bmin", nil, skiff.ErrInvalidKey},
		{"zero-width joiner", "a\u200Db", nil, skiff.ErrInvalidKey},
		{"byte order mark", "\uFEFFa", nil, skiff.ErrInvalidKey},
		{"line separator", "a\u2028b", nil, skiff.ErrInvalidKey},
		{"key too large", strings.Repeat("k", 65), nil, skiff.ErrKeyTooLarge},
		{"value too large", "a", bytes.Repeat([]byte("v"), 129), skiff.ErrValueTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, n := range []*skiff.Node{leader, follower} {
				_, err := n.Put(ctx, tc.key, tc.value)
				wantErr(t, "Put", err, tc.want)
				_, err = n.Create(ctx, tc.key, tc.value)
				wantErr(t, "Create", err, tc.want)
				_, err = n.CompareAndSwap(ctx, tc.key, tc.value, 1)
				wantErr(t, "CompareAndSwap", err, tc.want)
				if tc.want == skiff.ErrInvalidKey {
					wantErr(t, "ValidKey", skiff.ValidKey(tc.key), tc.want)
				}
				if tc.value == nil {
					wantErr(t, "Delete", n.Delete(ctx, tc.key), tc.want)
					_, err = n.Get(ctx, tc.key)
					wantErr(t, "Get", err, tc.want)
				}
			}
		})
	}
	if err := skiff.ValidKey(strings.Repeat("k", 65)); err != nil {
		t.Fatalf("ValidKey of a 65-byte key = %v: only a node's own limit refuses it", err)
	}
	wantErr(t, "ValidKey(65 KiB)", skiff.ValidKey(strings.Repeat("k", 65<<10)), skiff.ErrKeyTooLarge)
	_, err := leader.CompareAndSwap(ctx, "a", nil, 0)
	wantErr(t, "CompareAndSwap(revision 0)", err, skiff.ErrInvalidArgument)
	_, err = leader.List(ctx, "a", skiff.WithLimit(-1))
	wantErr(t, "List(limit -1)", err, skiff.ErrInvalidArgument)
	_, err = leader.List(ctx, "a//b")
	wantErr(t, "List(a//b)", err, skiff.ErrInvalidKey)
	if after := leader.Status().CommitIndex; after != before {
		t.Fatalf("commit index moved from %d to %d: bad input reached the log", before, after)
	}
	if res, err := leader.List(ctx, ""); err != nil || len(res.KVs) != 0 {
		t.Fatalf("List after bad input = %+v, %v; want empty", res, err)
	}
}

func TestQuota(t *testing.T) {
	c := skifftest.NewCluster(t, 3, &skifftest.Options{Configure: func(i int, cfg *skiff.Config) {
		cfg.QuotaBytes = 1000
	}})
	ctx := testCtx(t)
	n := c.Follower()
	val := bytes.Repeat([]byte("x"), 95) // 100 bytes with a 5-byte key
	var err error
	stored := 0
	for i := 0; i < 20 && err == nil; i++ {
		if _, err = n.Put(ctx, "q/"+string(rune('a'+i))+"00", val); err == nil {
			stored++
		}
	}
	if stored != 10 {
		t.Fatalf("stored %d 100-byte entries under a 1000-byte quota, want 10", stored)
	}
	wantErr(t, "Put over quota", err, skiff.ErrQuotaExceeded)
	// Reads work, overwrites that do not grow work, deletes work and
	// make room.
	if _, err := n.Get(ctx, "q/a00"); err != nil {
		t.Fatalf("Get over quota: %v", err)
	}
	if _, err := n.Put(ctx, "q/a00", val[:90]); err != nil {
		t.Fatalf("shrinking Put over quota: %v", err)
	}
	if err := n.Delete(ctx, "q/b00"); err != nil {
		t.Fatalf("Delete over quota: %v", err)
	}
	if _, err := n.Put(ctx, "q/zz0", val); err != nil {
		t.Fatalf("Put after Delete made room: %v", err)
	}
	if st := c.Leader().Status(); st.Bytes > 1000 {
		t.Fatalf("state is %d bytes, quota 1000", st.Bytes)
	}
}

func TestReturnedValuesAreCopies(t *testing.T) {
	c := skifftest.NewCluster(t, 1, nil)
	n := c.Node(0)
	ctx := testCtx(t)
	in := []byte("abc")
	if _, err := n.Put(ctx, "k", in); err != nil {
		t.Fatal(err)
	}
	in[0] = 'X'
	kv, _ := n.Get(ctx, "k")
	kv.Value[1] = 'Y'
	again, _ := n.Get(ctx, "k")
	if string(again.Value) != "abc" {
		t.Fatalf("Get(k) = %q after caller modified buffers, want abc", again.Value)
	}
}

func TestClosedNodeErrors(t *testing.T) {
	c := skifftest.NewCluster(t, 1, nil)
	n := c.Node(0)
	c.Stop(0)
	ctx := testCtx(t)
	_, err := n.Get(ctx, "k")
	wantErr(t, "Get after Close", err, skiff.ErrClosed)
	wantErr(t, "Delete after Close", n.Delete(ctx, "k"), skiff.ErrClosed)
	_, err = n.Members(ctx)
	wantErr(t, "Members after Close", err, skiff.ErrClosed)
	_, err = n.WaitForLeader(ctx)
	if !errors.Is(err, skiff.ErrClosed) {
		t.Fatalf("WaitForLeader after Close: err = %v, want ErrClosed", err)
	}
}
