package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/google/uuid"

	"github.com/imsue/imsue/internal/regfile"
	"github.com/imsue/imsue/profile"
)

// instanceURN is the UE's +sip.instance (TS 24.229 §5.1.1.2.1): the IMEI
// URN of the profile's imei (TS 23.003 §13.8), else a UUID URN (RFC 4122)
// kept in <sqn_state>.instance, so that one subscriber presents one
// instance across runs (the registrar keys its bindings and GRUUs by it).
// The file is created 0600 on first use.
func instanceURN(p *profile.Profile) (urn, source string, err error) {
	if u := p.InstanceURN(); u != "" {
		return u, "imei", nil
	}
	path := p.SQNState + ".instance"
	if f, err := regfile.Open(path); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		if sc.Scan() {
			u := strings.TrimSpace(sc.Text())
			if _, perr := uuid.Parse(strings.TrimPrefix(u, "urn:uuid:")); perr == nil && strings.HasPrefix(u, "urn:uuid:") {
				return u, path, nil
			}
		}
		return "", "", fmt.Errorf("instance file %s: not one urn:uuid: line (delete it to make a new one)", path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", "", fmt.Errorf("instance file: %w", err)
	}
	u := "urn:uuid:" + uuid.NewString()
	f, err := regfile.Create(path)
	if err != nil {
		return "", "", fmt.Errorf("instance file: %w", err)
	}
	if _, err := f.WriteString(u + "\n"); err != nil {
		f.Close()
		return "", "", fmt.Errorf("instance file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", "", fmt.Errorf("instance file %s: %w", path, err)
	}
	return u, path, nil
}
