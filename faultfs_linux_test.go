//go:build linux

package skiff_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// File systems that fail on demand, for the disk fault tests. Mounting
// needs root and the usual tools; where either is missing, or the kernel
// refuses (a container without loop devices), the test is skipped with
// the reason.

// mountable skips the test unless it can mount file systems with the
// given tools.
func mountable(t *testing.T, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount file systems")
	}
	for _, tool := range append(tools, "mount", "umount") {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
}

// privileged runs a setup command, skipping the test if it is refused.
func privileged(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Skipf("%s %s refused: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// unmountAtCleanup unmounts dir when the test ends, lazily if something
// still holds it, so that a failed test never leaves a mount behind.
func unmountAtCleanup(t *testing.T, dir string) {
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v: %s; unmounting lazily", dir, err, out)
			_ = exec.Command("umount", "-l", dir).Run()
		}
	})
}

// faultFS is an ext4 file system on a loop device, mounted with
// errors=remount-ro. A plain "mount -o remount,ro" fails while a node
// has files open for writing; an ext4 error remounts it read-only at once
// (emergency read-only), which is what a failing disk does.
type faultFS struct {
	dir     string // the mount point
	trigger string // writing here makes ext4 report an error
}

// newFaultFS makes and mounts a 64 MiB ext4 image kept in a temporary
// file.
func newFaultFS(t *testing.T) *faultFS {
	t.Helper()
	mountable(t, "losetup", "mkfs.ext4")
	img := filepath.Join(t.TempDir(), "ext4.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 64<<20); err != nil {
		t.Fatal(err)
	}
	privileged(t, "mkfs.ext4", "-q", "-F", img)
	dev := privileged(t, "losetup", "-f", "--show", img)
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Logf("losetup -d %s: %v: %s", dev, err, out)
		}
	})
	dir := t.TempDir()
	privileged(t, "mount", "-t", "ext4", "-o", "errors=remount-ro", dev, dir)
	unmountAtCleanup(t, dir)
	trigger := filepath.Join("/sys/fs/ext4", filepath.Base(dev), "trigger_fs_error")
	if _, err := os.Stat(trigger); err != nil {
		t.Skipf("the kernel cannot make ext4 fail on demand: %v", err)
	}
	return &faultFS{dir: dir, trigger: trigger}
}

// smallTmpfs mounts a tmpfs of size bytes, a disk that fills up quickly.
func smallTmpfs(t *testing.T, size int64) string {
	t.Helper()
	mountable(t)
	dir := t.TempDir()
	privileged(t, "mount", "-t", "tmpfs", "-o", "size="+strconv.FormatInt(size, 10), "tmpfs", dir)
	unmountAtCleanup(t, dir)
	return dir
}
