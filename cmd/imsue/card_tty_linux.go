package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// promptPIN asks for the PIN on the controlling terminal with echo off.
func promptPIN(prompt string) ([]byte, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, usageError(fmt.Errorf("--pin-prompt: no terminal (%v): use a PIN file", err))
	}
	defer tty.Close()
	fd := int(tty.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, usageError(errors.New("--pin-prompt: /dev/tty is not a terminal: use a PIN file"))
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	quiet.Lflag |= unix.ICANON | unix.ISIG
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return nil, usageError(fmt.Errorf("--pin-prompt: %w", err))
	}
	defer func() {
		_ = unix.IoctlSetTermios(fd, unix.TCSETS, old)
		fmt.Fprintln(tty)
	}()
	fmt.Fprint(tty, prompt)
	line, err := bufio.NewReader(tty).ReadBytes('\n')
	defer clear(line)
	if err != nil && len(line) == 0 {
		return nil, usageError(fmt.Errorf("--pin-prompt: %w", err))
	}
	return bytes.Clone(bytes.TrimSpace(line)), nil
}

// terminalAttached reports whether imsue can prompt: stdin is a terminal.
func terminalAttached() bool {
	_, err := unix.IoctlGetTermios(int(os.Stdin.Fd()), unix.TCGETS)
	return err == nil
}
