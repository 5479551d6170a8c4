package telemetry

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"sync"
)

// RotatingFile is a file writer that rotates by size: on the write that would take the file
// past its maximum size it closes the file, renames path.(N-1) to path.N, …, path.1 to
// path.2 and path to path.1 (dropping the old path.N), and starts a new path. The file and
// its backups are created with mode 0600. A single write larger than the maximum goes whole
// into a fresh file, so a write is never split between two files.
//
// A RotatingFile is safe for concurrent use.
type RotatingFile struct {
	path       string
	maxSize    int64
	maxBackups int

	mu   sync.Mutex
	f    *os.File // nil after a failed reopen, or after Close
	size int64
	shut bool // Close was called
}

// OpenRotatingFile opens path for appending, creating it if needed. maxSize (> 0) is the size
// in bytes past which it rotates; maxBackups (>= 0) is how many rotated files are kept.
func OpenRotatingFile(path string, maxSize int64, maxBackups int) (*RotatingFile, error) {
	if maxSize <= 0 || maxBackups < 0 {
		return nil, fmt.Errorf("open rotating file %s: max size %d and backups %d must be positive", path, maxSize, maxBackups)
	}
	r := &RotatingFile{path: path, maxSize: maxSize, maxBackups: maxBackups}
	if err := r.open(os.O_APPEND); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *RotatingFile) open(mode int) error {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_CREATE|mode, 0o600)
	if err != nil {
		return fmt.Errorf("open %s: %w", r.path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("stat %s: %w", r.path, err)
	}
	r.f, r.size = f, fi.Size()
	return nil
}

// Write writes p to the file, rotating first when p would take it past the maximum size.
func (r *RotatingFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.shut {
		return 0, fs.ErrClosed
	}
	if r.f != nil && r.size > 0 && r.size+int64(len(p)) > r.maxSize {
		if err := r.rotate(); err != nil {
			return 0, err
		}
	}
	if r.f == nil { // a previous reopen failed: try again
		if err := r.open(os.O_APPEND); err != nil {
			return 0, err
		}
	}
	n, err := r.f.Write(p)
	r.size += int64(n)
	return n, err
}

// rotate shifts the backups by one and starts an empty file. When a rename fails it still
// starts a new file, truncating the old one's content rather than growing past the limit.
func (r *RotatingFile) rotate() error {
	err := r.f.Close()
	r.f = nil
	for i := r.maxBackups - 1; i >= 1; i-- {
		err = errors.Join(err, renameIfExists(r.backup(i), r.backup(i+1)))
	}
	if r.maxBackups > 0 {
		err = errors.Join(err, renameIfExists(r.path, r.backup(1)))
	}
	err = errors.Join(err, r.open(os.O_TRUNC))
	if err != nil {
		return fmt.Errorf("rotate %s: %w", r.path, err)
	}
	return nil
}

func (r *RotatingFile) backup(i int) string { return r.path + "." + strconv.Itoa(i) }

func renameIfExists(from, to string) error {
	if err := os.Rename(from, to); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Close closes the file. Writes after Close fail with fs.ErrClosed. Close is idempotent.
func (r *RotatingFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.shut = true
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}
