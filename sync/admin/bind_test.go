package admin

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckBind(t *testing.T) {
	tests := []struct {
		addr     string
		hasToken bool
		wantErr  error // nil: accepted
	}{
		{"127.0.0.1:8182", false, nil},
		{"127.0.0.2:8182", false, nil},
		{"[::1]:8182", false, nil},
		{"localhost:8182", false, nil},
		{":8182", false, ErrUnprotectedBind},
		{"0.0.0.0:8182", false, ErrUnprotectedBind},
		{"[::]:8182", false, ErrUnprotectedBind},
		{"10.0.0.5:8182", false, ErrUnprotectedBind},
		{"admin.example:8182", false, ErrUnprotectedBind},
		{":8182", true, nil},
		{"0.0.0.0:8182", true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			err := CheckBind(tc.addr, tc.hasToken)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("CheckBind(%q, %v) = %v, want %v", tc.addr, tc.hasToken, err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "--admin-token-file") {
				t.Errorf("error %q does not say to set --admin-token-file", err)
			}
		})
	}
	if err := CheckBind("no-port", true); err == nil {
		t.Error("CheckBind accepted an address without a port")
	}
}
