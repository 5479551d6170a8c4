package sim

import (
	"encoding/json"
	"errors"
	"net/http"
)

// ErrInvalidConfig marks a [Config] that [Config.Validate] rejected.
var ErrInvalidConfig = errors.New("invalid config")

// errorBody is OpenAI's error envelope.
type errorBody struct {
	Error errorDetail `json:"error"`
}

// errorDetail is the inside of OpenAI's error envelope.
type errorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    int     `json:"code"`
}

// errorTypes maps HTTP statuses to the error type names vLLM uses.
var errorTypes = map[int]string{
	http.StatusBadRequest:            "BadRequestError",
	http.StatusUnauthorized:          "AuthenticationError",
	http.StatusNotFound:              "NotFoundError",
	http.StatusRequestEntityTooLarge: "BadRequestError",
	http.StatusTooManyRequests:       "RateLimitError",
	http.StatusInternalServerError:   "InternalServerError",
}

// writeError answers with status and an OpenAI-shaped error body.
func writeError(w http.ResponseWriter, status int, msg string) {
	typ, ok := errorTypes[status]
	if !ok {
		typ = "server_error"
	}
	writeJSON(w, status, errorBody{Error: errorDetail{Message: msg, Type: typ, Code: status}})
}

// writeJSON answers with status and v encoded as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encode response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b) // The client may be gone; nothing useful to do then.
}
