// Package regfile opens the files imsue reads and writes (profiles, SQN
// state, --pcap, --esp-keys) as regular files only. A path the user names
// may be a FIFO, a device or a symbolic link planted where an output file
// goes; opening a FIFO blocks for ever, and following a link as root
// truncates whatever it points to. Here neither happens: the open never
// blocks, and anything but a regular file is refused with an error that
// says what the path is.
package regfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// ErrNotRegular is wrapped by the errors for a path that is not a regular
// file (or, for Create, is a symbolic link).
var ErrNotRegular = errors.New("not a regular file")

// Open opens path for reading. It does not block on a FIFO or a device
// (O_NONBLOCK) and refuses anything but a regular file.
func Open(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	if err := regular(f); err != nil {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return f, nil
}

// Create creates path, or truncates an existing regular file, for writing
// with mode 0600 (an existing file's mode is tightened to 0600: the file
// will hold keys or a capture). It refuses a symbolic link as the last
// component of path (O_NOFOLLOW) and anything but a regular file, and it
// does not block on a FIFO.
func Create(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o600)
	if err != nil {
		switch {
		case errors.Is(err, syscall.ELOOP):
			return nil, &fs.PathError{Op: "create", Path: path, Err: fmt.Errorf("%w: a symbolic link", ErrNotRegular)}
		case errors.Is(err, syscall.ENXIO):
			// O_WRONLY|O_NONBLOCK on a FIFO without a reader.
			return nil, &fs.PathError{Op: "create", Path: path, Err: fmt.Errorf("%w: a FIFO", ErrNotRegular)}
		}
		return nil, err
	}
	if err := regular(f); err != nil {
		f.Close()
		return nil, &fs.PathError{Op: "create", Path: path, Err: err}
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func regular(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if m := fi.Mode(); !m.IsRegular() {
		return fmt.Errorf("%w: %s", ErrNotRegular, kind(m))
	}
	return nil
}

func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeDevice != 0, m&fs.ModeCharDevice != 0:
		return "a device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m.IsDir():
		return "a directory"
	}
	return "mode " + m.String()
}
