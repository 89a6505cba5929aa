package store

import "strings"

// View is an immutable image of the key space at one revision. All methods
// are safe for concurrent use and take no locks; a view never changes, no
// matter what is committed after it was taken.
type View struct {
	tree  *tree // never written after the view is published
	rev   uint64
	bytes int64
}

// Revision returns the applied index this view reflects.
func (v *View) Revision() uint64 { return v.rev }

// Len returns the number of keys.
func (v *View) Len() int { return v.tree.Len() }

// Bytes returns the sum of len(key)+len(value) over all keys.
func (v *View) Bytes() int64 { return v.bytes }

// Get returns the entry for key.
func (v *View) Get(key string) (Entry, bool) {
	it, ok := v.tree.Get(item{key: key})
	if !ok {
		return Entry{}, false
	}
	return it.entry(), true
}

// Range calls fn for each key under prefix in ascending byte order, starting
// strictly after the key after (when after is not empty), until fn returns
// false or the keys run out.
//
// The prefix is a directory: "users" and "users/" both select the keys
// strictly below "users/" (not the key "users" itself, and not
// "usersx/alice"); "" selects every key.
func (v *View) Range(prefix, after string, fn func(Entry) bool) {
	prefix = dirPrefix(prefix)
	start := prefix
	if after != "" {
		// after+"\x00" is the smallest string greater than after.
		start = max(start, after+"\x00")
	}
	v.tree.AscendGreaterOrEqual(item{key: start}, func(it item) bool {
		return strings.HasPrefix(it.key, prefix) && fn(it.entry())
	})
}

// Child is one entry of a directory listing.
type Child struct {
	Name        string // a single segment, without '/'
	IsKey       bool   // prefix+"/"+Name is itself a key
	HasChildren bool   // some keys lie below prefix+"/"+Name+"/"
}

// Children lists the immediate children of the directory prefix, like ls:
// for the keys a/b, a/b/c and a/d, Children("a", "", 0) returns
// {b, IsKey, HasChildren} and {d, IsKey}. "" lists the top level. Names come
// in ascending order, starting strictly after the name after (when not
// empty), at most limit of them (limit <= 0: all).
//
// The cost is O(children · log n): each child's subtree is skipped with a
// seek rather than scanned.
func (v *View) Children(prefix, after string, limit int) []Child {
	var out []Child
	v.EachChild(prefix, after, func(c Child) bool {
		out = append(out, c)
		return limit <= 0 || len(out) < limit
	})
	return out
}

// EachChild calls fn for the children Children would list, in the same
// order, until fn returns false or they run out. Callers that bound what
// they collect by something other than a count (bytes, say) use it, so
// that no child past the bound is looked up.
func (v *View) EachChild(prefix, after string, fn func(Child) bool) {
	dir := dirPrefix(prefix)
	name, ok := v.nextChild(dir, after, after != "")
	for ok {
		c := Child{
			Name:        name,
			IsKey:       v.tree.Has(item{key: dir + name}),
			HasChildren: v.hasPrefix(dir + name + "/"),
		}
		if !fn(c) {
			return
		}
		name, ok = v.nextChild(dir, name, true)
	}
}

// Prefixes returns the top-level namespaces: the distinct first segments of
// keys that contain '/', ascending. For the keys users/alice, users/bob and
// greeting it returns [users]. Namespaces are found by seeking past each
// subtree; only top-level keys without '/' are visited one by one.
func (v *View) Prefixes() []string {
	var out []string
	v.EachPrefix("", func(p string) bool {
		out = append(out, p)
		return true
	})
	return out
}

// EachPrefix calls fn for the namespaces Prefixes would return that sort
// strictly after after (when not empty), ascending, until fn returns false
// or they run out.
func (v *View) EachPrefix(after string, fn func(string) bool) {
	name, ok := v.nextChild("", after, after != "")
	for ok {
		if v.hasPrefix(name+"/") && !fn(name) {
			return
		}
		name, ok = v.nextChild("", name, true)
	}
}

// dirPrefix turns a directory name into the key prefix of its subtree.
func dirPrefix(p string) string {
	if p == "" || strings.HasSuffix(p, "/") {
		return p
	}
	return p + "/"
}

// nextChild returns the smallest child name of dir (a dirPrefix) that is
// greater than x, or the smallest of all when bounded is false.
//
// Children are not contiguous in key order, because bytes below '/' (such
// as '-' and '.') sort before it: the keys of child "b" are "a/b" and
// "a/b/…", and "a/b-c" sorts between them. So the first key found from a
// seek may belong to a child below x whose subtree sorts late (it is
// skipped), and the child it names may be preceded, in name order, by a
// child that exists only as a subtree sorting after it (checked by
// smallestChild).
func (v *View) nextChild(dir, x string, bounded bool) (string, bool) {
	seek := dir
	if bounded {
		seek = dir + x + "\x00" // the first key whose child name can exceed x
	}
	for {
		k, ok := v.seek(seek)
		if !ok || !strings.HasPrefix(k, dir) {
			return "", false
		}
		name, _, _ := strings.Cut(k[len(dir):], "/")
		if bounded && name <= x {
			// k is in the subtree of x or of a prefix of x; '0' is the
			// byte after '/', so this seeks past the whole subtree.
			seek = dir + name + "0"
			continue
		}
		return v.smallestChild(dir, name, x, bounded), true
	}
}

// smallestChild returns the smallest child name greater than x (when
// bounded) among name and the directory-only children whose subtrees sort
// after the first key of name. Those can only be proper prefixes p of name
// followed in name by a byte below '/': any other name below name has a key
// sorting before name's first key, and the seek would have found it.
func (v *View) smallestChild(dir, name, x string, bounded bool) string {
	for i := 0; i < len(name); i++ {
		if name[i] >= '/' {
			continue
		}
		p := name[:i]
		if (!bounded || p > x) && v.hasPrefix(dir+p+"/") {
			return p
		}
	}
	return name
}

// seek returns the first key greater than or equal to key.
func (v *View) seek(key string) (string, bool) {
	var found string
	var ok bool
	v.tree.AscendGreaterOrEqual(item{key: key}, func(it item) bool {
		found, ok = it.key, true
		return false
	})
	return found, ok
}

// hasPrefix reports whether some key starts with p.
func (v *View) hasPrefix(p string) bool {
	k, ok := v.seek(p)
	return ok && strings.HasPrefix(k, p)
}
