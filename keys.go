package skiff

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Keys are '/'-separated paths such as "users/alice/email". A key is
// non-empty valid UTF-8, does not start or end with '/', has no empty
// segment ("a//b"), and has no character that is invisible or changes how
// text around it is shown: control characters (C0, DEL, C1), format
// characters (bidirectional overrides and isolates, zero-width spaces and
// joiners, the byte order mark, the soft hyphen) and line or paragraph
// separators. Two keys that print alike are then the same key, and a key
// cannot hide a different one in a log or a terminal. A prefix names a subtree at
// segment boundaries: "users" and "users/" both mean every key below
// "users/", and neither matches "usersx" or "users" itself.

// ValidKey reports why key cannot be a key on any node, or nil: the
// rules above, and at most 64 KiB (a node's Config.MaxKeySize may allow
// less). The error matches ErrInvalidKey or ErrKeyTooLarge. A program may
// check keys it takes from its users before it sends them.
func ValidKey(key string) error { return validateKey(key, maxKeySizeLimit) }

// validateKey reports why key is not a valid key, or nil.
func validateKey(key string, maxSize int) error {
	if len(key) > maxSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrKeyTooLarge, len(key), maxSize)
	}
	if key == "" {
		return fmt.Errorf("%w: empty key", ErrInvalidKey)
	}
	if key[0] == '/' || key[len(key)-1] == '/' {
		return fmt.Errorf("%w: %q starts or ends with '/'", ErrInvalidKey, key)
	}
	return checkPath(key)
}

// checkPath rejects invalid UTF-8, empty segments and hidden characters.
func checkPath(p string) error {
	if !utf8.ValidString(p) {
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidKey, p)
	}
	if strings.Contains(p, "//") {
		return fmt.Errorf("%w: %q has an empty segment", ErrInvalidKey, p)
	}
	for _, r := range p {
		if hidden(r) {
			return fmt.Errorf("%w: %q has the invisible or control character %U", ErrInvalidKey, p, r)
		}
	}
	return nil
}

// hidden reports whether r is a control, format (Cf) or separator (Zl,
// Zp) character.
func hidden(r rune) bool {
	if r < 0x80 {
		return r < 0x20 || r == 0x7f // the common case, without a table lookup
	}
	return unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp)
}

// normalizePrefix validates a subtree prefix and returns it without its
// trailing '/'. The empty prefix means the whole tree.
func normalizePrefix(prefix string, maxSize int) (string, error) {
	p := strings.TrimSuffix(prefix, "/")
	if p == "" {
		if prefix != "" {
			return "", fmt.Errorf("%w: prefix %q", ErrInvalidKey, prefix)
		}
		return "", nil
	}
	if err := validateKey(p, maxSize); err != nil {
		return "", err
	}
	return p, nil
}

// validateID checks a node ID: non-empty, printable, no spaces, at most
// 128 bytes.
func validateID(id string) error {
	if id == "" || len(id) > 128 || !utf8.ValidString(id) {
		return fmt.Errorf("%w: node ID %q must be 1 to 128 bytes of UTF-8", ErrInvalidArgument, id)
	}
	for _, r := range id {
		if r == ' ' || hidden(r) {
			return fmt.Errorf("%w: node ID %q has a space, control or invisible character", ErrInvalidArgument, id)
		}
	}
	return nil
}
