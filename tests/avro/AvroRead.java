import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.io.BufferedOutputStream;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericEnumSymbol;
import org.apache.avro.generic.GenericFixed;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * Reads Kafka topics written in Confluent's Avro wire format (magic byte 0, a 4-byte big-endian
 * schema id, the Avro binary body) with Apache Avro's own Java library: each schema is fetched
 * from the schema registry by id ({@code <registry>/schemas/ids/<id>}), parsed with
 * {@link Schema.Parser} and the body decoded with {@link GenericDatumReader}. Prints one JSON
 * line per record: {"topic", "partition", "offset", "key", "value"}, key and value the decoded
 * data as JSON (null for a null key or a tombstone). The JSON is written here, losslessly:
 * records as objects in field order, unions unwrapped, bytes and fixed as base64, longs as exact
 * digits, NaN and infinities as strings.
 *
 * <p>Usage: {@code AvroRead <bootstrap servers> <registry url> <topic[,topic…]> <count>
 * <timeout ms>}. Exits 0 once {@code count} records were printed, 2 on a timeout, 1 on any
 * other error, with a message on stderr.
 */
public final class AvroRead {
  private static final HttpClient HTTP =
      HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
  private static final Map<Integer, Schema> SCHEMAS = new HashMap<>();
  private static String registry;
  /** Standard output in UTF-8, whatever the platform's default. */
  private static final PrintStream OUT = new PrintStream(
      new BufferedOutputStream(new FileOutputStream(FileDescriptor.out)), false,
      StandardCharsets.UTF_8);

  public static void main(String[] args) {
    if (args.length != 5) {
      System.err.println(
          "usage: AvroRead <bootstrap servers> <registry url> <topic[,topic...]> <count> <timeout ms>");
      System.exit(64);
    }
    try {
      System.exit(run(args[0], args[1], Arrays.asList(args[2].split(",")),
          Integer.parseInt(args[3]), Long.parseLong(args[4])));
    } catch (Throwable e) {
      System.err.println("AvroRead failed: " + e);
      e.printStackTrace(System.err);
      System.exit(1);
    }
  }

  private static int run(String brokers, String registryUrl, List<String> topics, int count,
      long timeoutMs) throws Exception {
    registry = registryUrl.replaceAll("/+$", "");
    Properties props = new Properties();
    props.put("bootstrap.servers", brokers);
    props.put("group.id", "avro-read-" + UUID.randomUUID());
    props.put("auto.offset.reset", "earliest");
    props.put("enable.auto.commit", "false");
    props.put("isolation.level", "read_committed");
    props.put("key.deserializer", ByteArrayDeserializer.class.getName());
    props.put("value.deserializer", ByteArrayDeserializer.class.getName());
    long deadline = System.currentTimeMillis() + timeoutMs;
    int printed = 0;
    StringBuilder out = new StringBuilder();
    try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
      consumer.subscribe(topics);
      while (printed < count) {
        long left = deadline - System.currentTimeMillis();
        if (left <= 0) {
          OUT.flush();
          System.err.println("AvroRead: timed out after " + timeoutMs + " ms with " + printed
              + " of " + count + " records from " + topics);
          return 2;
        }
        ConsumerRecords<byte[], byte[]> records =
            consumer.poll(Duration.ofMillis(Math.min(left, 200)));
        for (ConsumerRecord<byte[], byte[]> record : records) {
          out.setLength(0);
          out.append("{\"topic\":");
          string(out, record.topic());
          out.append(",\"partition\":").append(record.partition());
          out.append(",\"offset\":").append(record.offset());
          out.append(",\"key\":");
          decode(out, record, "key", record.key());
          out.append(",\"value\":");
          decode(out, record, "value", record.value());
          out.append('}');
          OUT.println(out);
          printed++;
        }
      }
    }
    OUT.flush();
    return 0;
  }

  /** Appends the decoded wire-format bytes as JSON, or null. */
  private static void decode(StringBuilder out, ConsumerRecord<?, ?> record, String part,
      byte[] bytes) throws Exception {
    if (bytes == null) {
      out.append("null");
      return;
    }
    String where = record.topic() + "[" + record.partition() + "@" + record.offset() + "]." + part;
    if (bytes.length < 5 || bytes[0] != 0) {
      throw new IllegalStateException(where + ": not Confluent's wire format (magic byte "
          + (bytes.length == 0 ? "missing" : bytes[0]) + ", " + bytes.length + " bytes)");
    }
    int id = ByteBuffer.wrap(bytes, 1, 4).getInt();
    Schema schema = schema(id);
    GenericDatumReader<Object> reader = new GenericDatumReader<>(schema);
    BinaryDecoder decoder = DecoderFactory.get().binaryDecoder(bytes, 5, bytes.length - 5, null);
    Object datum = reader.read(null, decoder);
    if (!decoder.isEnd()) {
      throw new IllegalStateException(where + ": bytes left after decoding with schema " + id);
    }
    json(out, datum, schema);
  }

  private static Schema schema(int id) throws Exception {
    Schema cached = SCHEMAS.get(id);
    if (cached != null) return cached;
    HttpResponse<String> response = HTTP.send(
        HttpRequest.newBuilder(URI.create(registry + "/schemas/ids/" + id))
            .timeout(Duration.ofSeconds(10)).GET().build(),
        HttpResponse.BodyHandlers.ofString());
    if (response.statusCode() != 200) {
      throw new IllegalStateException("registry " + registry + ": schema id " + id + ": HTTP "
          + response.statusCode() + ": " + response.body());
    }
    String body = response.body();
    // {"schema": "<the schema's JSON as a string>", ...}: parsed with Avro's own Jackson.
    com.fasterxml.jackson.databind.JsonNode node =
        new com.fasterxml.jackson.databind.ObjectMapper().readTree(body);
    com.fasterxml.jackson.databind.JsonNode text = node.get("schema");
    if (text == null || !text.isTextual()) {
      throw new IllegalStateException("registry " + registry + ": schema id " + id
          + ": no \"schema\" string in " + body);
    }
    Schema schema = new Schema.Parser().parse(text.asText());
    SCHEMAS.put(id, schema);
    return schema;
  }

  /** Appends {@code datum}, of {@code schema}, as JSON. */
  private static void json(StringBuilder out, Object datum, Schema schema) {
    switch (schema.getType()) {
      case NULL:
        out.append("null");
        return;
      case UNION: {
        int branch = GenericData.get().resolveUnion(schema, datum);
        json(out, datum, schema.getTypes().get(branch));
        return;
      }
      case RECORD: {
        GenericRecord record = (GenericRecord) datum;
        out.append('{');
        boolean first = true;
        for (Schema.Field field : schema.getFields()) {
          if (!first) out.append(',');
          first = false;
          string(out, field.name());
          out.append(':');
          json(out, record.get(field.pos()), field.schema());
        }
        out.append('}');
        return;
      }
      case ARRAY: {
        out.append('[');
        boolean first = true;
        for (Object item : (List<?>) datum) {
          if (!first) out.append(',');
          first = false;
          json(out, item, schema.getElementType());
        }
        out.append(']');
        return;
      }
      case MAP: {
        out.append('{');
        boolean first = true;
        for (Map.Entry<?, ?> entry : ((Map<?, ?>) datum).entrySet()) {
          if (!first) out.append(',');
          first = false;
          string(out, entry.getKey().toString());
          out.append(':');
          json(out, entry.getValue(), schema.getValueType());
        }
        out.append('}');
        return;
      }
      case STRING:
        string(out, datum.toString());
        return;
      case ENUM:
        string(out, ((GenericEnumSymbol<?>) datum).toString());
        return;
      case BYTES: {
        ByteBuffer buffer = ((ByteBuffer) datum).duplicate();
        byte[] bytes = new byte[buffer.remaining()];
        buffer.get(bytes);
        string(out, Base64.getEncoder().encodeToString(bytes));
        return;
      }
      case FIXED:
        string(out, Base64.getEncoder().encodeToString(((GenericFixed) datum).bytes()));
        return;
      case INT:
        out.append(((Integer) datum).intValue());
        return;
      case LONG:
        out.append(((Long) datum).longValue());
        return;
      case FLOAT: {
        float f = (Float) datum;
        if (Float.isNaN(f) || Float.isInfinite(f)) string(out, Float.toString(f));
        else out.append(Float.toString(f));
        return;
      }
      case DOUBLE: {
        double d = (Double) datum;
        if (Double.isNaN(d) || Double.isInfinite(d)) string(out, Double.toString(d));
        else out.append(Double.toString(d));
        return;
      }
      case BOOLEAN:
        out.append(((Boolean) datum).booleanValue());
        return;
      default:
        throw new IllegalStateException("unexpected Avro type " + schema.getType());
    }
  }

  /** Appends {@code s} as a JSON string. */
  private static void string(StringBuilder out, String s) {
    out.append('"');
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      switch (c) {
        case '"':
          out.append("\\\"");
          break;
        case '\\':
          out.append("\\\\");
          break;
        case '\n':
          out.append("\\n");
          break;
        case '\r':
          out.append("\\r");
          break;
        case '\t':
          out.append("\\t");
          break;
        case '\b':
          out.append("\\b");
          break;
        case '\f':
          out.append("\\f");
          break;
        default:
          if (c < 0x20 || c == 0x2028 || c == 0x2029) {
            out.append(String.format("\\u%04x", (int) c));
          } else {
            out.append(c);
          }
      }
    }
    out.append('"');
  }
}
