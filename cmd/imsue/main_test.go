package main

import (
	"os"
	"testing"

	"github.com/imsue/imsue/internal/testenv"
)

// TestMain runs the tests through testenv.Main, so that the tests that run
// the built command share one build, removed when they have run.
func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
