"""The prediction log: every served prediction and its inputs, written off the request path."""
