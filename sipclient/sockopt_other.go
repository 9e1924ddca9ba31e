//go:build !unix

package sipclient

func setReuseAddr(uintptr) error { return nil }
