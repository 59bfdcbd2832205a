package admin

import (
	"fmt"
	"os"
	"strings"
)

// MinTokenLength is the shortest admin token accepted, wherever it comes
// from.
const MinTokenLength = 16

// LoadToken returns the admin token held in the file at path, else env (the
// value of JWTGUARD_ADMIN_TOKEN), trimmed; "" when neither is set. A token
// shorter than MinTokenLength is refused.
func LoadToken(path, env string) (string, error) {
	from, tok := "JWTGUARD_ADMIN_TOKEN", strings.TrimSpace(env)
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("admin-token-file: %w", err)
		}
		from, tok = "admin-token-file "+path, strings.TrimSpace(string(b))
		if tok == "" {
			return "", fmt.Errorf("%s: empty", from)
		}
	}
	if tok != "" && len(tok) < MinTokenLength {
		return "", fmt.Errorf("%s: token shorter than %d characters", from, MinTokenLength)
	}
	return tok, nil
}
