//go:build !linux

package main

import "errors"

func promptPIN(string) ([]byte, error) {
	return nil, usageError(errors.New("--pin-prompt: not supported on this system: use a PIN file"))
}

func terminalAttached() bool { return false }
