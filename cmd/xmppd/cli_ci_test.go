package main

import (
	"os"
	"strings"
	"testing"
)

// TestCIRunsStaticcheck: .ci/run runs staticcheck, the version go.mod pins,
// after go vet.
func TestCIRunsStaticcheck(t *testing.T) {
	b, err := os.ReadFile("../../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	ci := string(b)
	vet := strings.Index(ci, `step "go vet" go vet ./...`)
	sc := strings.Index(ci, `step "staticcheck" go tool staticcheck ./...`)
	if vet < 0 || sc < 0 || sc < vet {
		t.Errorf(".ci/run: go vet at %d, staticcheck at %d; want staticcheck after go vet", vet, sc)
	}
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mod), "tool honnef.co/go/tools/cmd/staticcheck") {
		t.Error("go.mod does not pin staticcheck as a tool")
	}
}
