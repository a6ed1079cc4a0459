// A TensorFlow Serving REST client in one Java file: JDK 17, no build tool, no dependencies.
//
//   java clients/java/Predict.java URL MODEL ROWS
//   java clients/java/Predict.java http://127.0.0.1:8501 linear_model "[[1,2],[5,7]]"
//   [2.99213362]
//   [5.99577856]
//
// POSTs {"instances": ROWS} to URL/v1/models/MODEL:predict and prints the predictions, one JSON
// value per line, in row order (numbers exactly as the server wrote them). MODEL may pin a version
// or label the way the REST API does: "linear_model/versions/3", "linear_model/labels/stable".
// Exit status: 0 on success; 1 when the server cannot be reached or answers with an error (its
// message is printed to stderr); 2 for a bad command line or ROWS that are not a JSON array.

import java.io.IOException;
import java.net.ConnectException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

public final class Predict {
    private static final Duration CONNECT_TIMEOUT = Duration.ofSeconds(10);
    private static final Duration REQUEST_TIMEOUT = Duration.ofSeconds(60);

    /** A failure with the message the user sees and the exit status it ends with. */
    static final class Failure extends Exception {
        final int status;

        Failure(int status, String message) {
            super(message);
            this.status = status;
        }
    }

    public static void main(String[] args) {
        try {
            for (Object prediction : predict(args)) {
                System.out.println(Json.write(prediction));
            }
        } catch (Failure failure) {
            System.err.println("error: " + failure.getMessage());
            System.exit(failure.status);
        }
    }

    static List<?> predict(String[] args) throws Failure {
        if (args.length != 3) {
            throw new Failure(2, "usage: java Predict.java URL MODEL ROWS\n"
                    + "  e.g. java Predict.java http://127.0.0.1:8501 linear_model \"[[1,2],[5,7]]\"");
        }
        String base = args[0].replaceAll("/+$", "");
        URI uri;
        try {
            uri = URI.create(base + "/v1/models/" + args[1] + ":predict");
        } catch (IllegalArgumentException e) {
            throw new Failure(2, "not a valid URL: " + base + "/v1/models/" + args[1] + ":predict");
        }
        Object rows;
        try {
            rows = Json.parse(args[2]);
        } catch (IllegalArgumentException e) {
            throw new Failure(2, "ROWS is not valid JSON (" + e.getMessage() + "): " + args[2]);
        }
        if (!(rows instanceof List)) {
            throw new Failure(2, "ROWS must be a JSON array of rows, e.g. [[1,2],[5,7]]");
        }
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("instances", rows);
        HttpResponse<String> response = post(uri, Json.write(body));
        Object answer;
        try {
            answer = Json.parse(response.body());
        } catch (IllegalArgumentException e) {
            throw new Failure(1, "HTTP " + response.statusCode() + " from " + uri + " with a body that is not JSON: "
                    + abbreviate(response.body()));
        }
        Map<?, ?> fields = answer instanceof Map ? (Map<?, ?>) answer : Map.of();
        if (response.statusCode() != 200) {
            Object error = fields.get("error");
            throw new Failure(1, "HTTP " + response.statusCode() + " from " + uri + ": "
                    + (error != null ? error : abbreviate(response.body())));
        }
        Object predictions = fields.get("predictions");
        if (!(predictions instanceof List)) {
            throw new Failure(1, "the answer from " + uri + " has no \"predictions\" list: "
                    + abbreviate(response.body()));
        }
        return (List<?>) predictions;
    }

    private static HttpResponse<String> post(URI uri, String json) throws Failure {
        // HTTP/1.1: the default HTTP/2 upgrade (h2c) request is refused by many servers, ours included.
        HttpClient client = HttpClient.newBuilder()
                .version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(CONNECT_TIMEOUT)
                .build();
        HttpRequest request = HttpRequest.newBuilder(uri)
                .timeout(REQUEST_TIMEOUT)
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(json))
                .build();
        try {
            return client.send(request, HttpResponse.BodyHandlers.ofString());
        } catch (ConnectException e) {
            throw new Failure(1, "cannot connect to " + uri.getScheme() + "://" + uri.getAuthority()
                    + " (is the model server running?)");
        } catch (HttpTimeoutException e) {
            throw new Failure(1, "no answer from " + uri + " within the timeout");
        } catch (IOException e) {
            throw new Failure(1, "request to " + uri + " failed: " + e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new Failure(1, "interrupted");
        } catch (IllegalArgumentException e) {
            throw new Failure(2, "not an http(s) URL: " + uri);
        }
    }

    private static String abbreviate(String text) {
        return text.length() <= 300 ? text : text.substring(0, 300) + "...";
    }

    /**
     * The JSON this client needs, with no library: objects become LinkedHashMap, arrays ArrayList,
     * numbers keep their exact text (so predictions print as the server wrote them).
     */
    static final class Json {
        /** A JSON number kept as written. */
        record Number(String text) {
        }

        private final String text;
        private int pos;

        private Json(String text) {
            this.text = text;
        }

        static Object parse(String text) {
            Json parser = new Json(text);
            Object value = parser.value();
            parser.skipSpace();
            if (parser.pos != text.length()) {
                throw parser.error("unexpected text after the value");
            }
            return value;
        }

        static String write(Object value) {
            StringBuilder out = new StringBuilder();
            write(value, out);
            return out.toString();
        }

        private static void write(Object value, StringBuilder out) {
            if (value == null) {
                out.append("null");
            } else if (value instanceof Number number) {
                out.append(number.text());
            } else if (value instanceof Boolean) {
                out.append(value);
            } else if (value instanceof String string) {
                writeString(string, out);
            } else if (value instanceof List<?> list) {
                out.append('[');
                for (int i = 0; i < list.size(); i++) {
                    out.append(i == 0 ? "" : ",");
                    write(list.get(i), out);
                }
                out.append(']');
            } else if (value instanceof Map<?, ?> map) {
                out.append('{');
                boolean first = true;
                for (Map.Entry<?, ?> entry : map.entrySet()) {
                    out.append(first ? "" : ",");
                    first = false;
                    writeString(String.valueOf(entry.getKey()), out);
                    out.append(':');
                    write(entry.getValue(), out);
                }
                out.append('}');
            } else {
                throw new IllegalArgumentException("cannot write " + value.getClass());
            }
        }

        private static void writeString(String s, StringBuilder out) {
            out.append('"');
            for (char c : s.toCharArray()) {
                switch (c) {
                    case '"' -> out.append("\\\"");
                    case '\\' -> out.append("\\\\");
                    case '\n' -> out.append("\\n");
                    case '\r' -> out.append("\\r");
                    case '\t' -> out.append("\\t");
                    default -> {
                        if (c < 0x20) {
                            out.append(String.format("\\u%04x", (int) c));
                        } else {
                            out.append(c);
                        }
                    }
                }
            }
            out.append('"');
        }

        private IllegalArgumentException error(String what) {
            return new IllegalArgumentException(what + " at character " + (pos + 1));
        }

        private void skipSpace() {
            while (pos < text.length() && Character.isWhitespace(text.charAt(pos))) {
                pos++;
            }
        }

        private Object value() {
            skipSpace();
            if (pos >= text.length()) {
                throw error("unexpected end");
            }
            char c = text.charAt(pos);
            switch (c) {
                case '{':
                    return object();
                case '[':
                    return array();
                case '"':
                    return string();
                default:
                    return literal();
            }
        }

        private Map<String, Object> object() {
            Map<String, Object> map = new LinkedHashMap<>();
            pos++;
            skipSpace();
            if (peek('}')) {
                return map;
            }
            while (true) {
                skipSpace();
                if (pos >= text.length() || text.charAt(pos) != '"') {
                    throw error("expected a key");
                }
                String key = string();
                skipSpace();
                expect(':');
                map.put(key, value());
                skipSpace();
                if (peek('}')) {
                    return map;
                }
                expect(',');
            }
        }

        private List<Object> array() {
            List<Object> list = new ArrayList<>();
            pos++;
            skipSpace();
            if (peek(']')) {
                return list;
            }
            while (true) {
                list.add(value());
                skipSpace();
                if (peek(']')) {
                    return list;
                }
                expect(',');
            }
        }

        private boolean peek(char c) {
            if (pos < text.length() && text.charAt(pos) == c) {
                pos++;
                return true;
            }
            return false;
        }

        private void expect(char c) {
            if (!peek(c)) {
                throw error("expected '" + c + "'");
            }
        }

        private String string() {
            StringBuilder out = new StringBuilder();
            pos++;
            while (pos < text.length()) {
                char c = text.charAt(pos++);
                if (c == '"') {
                    return out.toString();
                }
                if (c != '\\') {
                    out.append(c);
                    continue;
                }
                if (pos >= text.length()) {
                    break;
                }
                char e = text.charAt(pos++);
                switch (e) {
                    case 'n' -> out.append('\n');
                    case 't' -> out.append('\t');
                    case 'r' -> out.append('\r');
                    case 'b' -> out.append('\b');
                    case 'f' -> out.append('\f');
                    case 'u' -> {
                        if (pos + 4 > text.length()) {
                            throw error("bad \\u escape");
                        }
                        out.append((char) Integer.parseInt(text.substring(pos, pos + 4), 16));
                        pos += 4;
                    }
                    default -> out.append(e);
                }
            }
            throw error("unterminated string");
        }

        private Object literal() {
            int start = pos;
            while (pos < text.length() && ",]} \t\r\n".indexOf(text.charAt(pos)) < 0) {
                pos++;
            }
            String word = text.substring(start, pos);
            switch (word) {
                case "true":
                    return Boolean.TRUE;
                case "false":
                    return Boolean.FALSE;
                case "null":
                    return null;
                case "NaN", "Infinity", "-Infinity":
                    return new Number(word);  // TF Serving writes these for non-finite floats
                default:
                    if (word.matches("-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?")) {
                        return new Number(word);
                    }
                    pos = start;
                    throw error("unexpected '" + (word.isEmpty() ? text.charAt(pos) : word) + "'");
            }
        }
    }
}
