/*
 * DebeziumRun: runs Debezium's PostgreSQL connector in the embedded engine (Connect format, so
 * this program sees Kafka Connect SourceRecords) and either writes the records to a file or
 * produces them into Kafka. A test and benchmark peer for Spillway; see testing/debezium.ts,
 * which fetches the class path and compiles this single file with javac.
 *
 * Usage:
 *
 *   java -cp '<libs>/*:<classes>' DebeziumRun [options] (--out FILE | --kafka BROKERS)
 *
 * Options:
 *
 *   --set KEY=VALUE      A connector/engine property, applied on top of the defaults below
 *                        (repeatable; later wins). Properties starting with "key.converter." or
 *                        "value.converter." also configure this program's key and value
 *                        converters (the prefix stripped), e.g.
 *                        --set value.converter.decimal.format=NUMERIC.
 *   --converter CLASS    The Kafka Connect Converter class for keys and values (instantiated
 *                        with its no-argument constructor, one pair per converting thread,
 *                        configured as above); default
 *                        org.apache.kafka.connect.json.JsonConverter. It must be on the class
 *                        path, e.g. io.apicurio.registry.utils.converter.AvroConverter with
 *                        --set value.converter.apicurio.registry.url=http://…/apis/registry/v2.
 *   --count N            Stop after N records. Every record the engine hands over counts:
 *                        change events, tombstones (value null) and transaction-metadata
 *                        records alike. Records beyond N in the same batch are dropped.
 *   --idle-ms M          Stop once M ms passed without a record, after at least one record.
 *   --schemas true|false schemas.enable of both JsonConverters (key and value); default true.
 *                        Only with the JsonConverter: another --converter gets no schemas.enable.
 *   --out FILE           Write one JSON line per record. With the JsonConverter:
 *                          {"topic":"..","key":<key JSON>,"value":<value JSON>,"headers":{..}}
 *                        key and value are the exact bytes the JsonConverter produced (what
 *                        Kafka Connect would put on the wire), embedded as JSON; null for a
 *                        null key or a tombstone. With any other --converter, whose bytes need
 *                        not be JSON:
 *                          {"topic":"..","keyBase64":"..","valueBase64":"..","headers":{..}}
 *                        the converter's exact bytes in standard base64 (with padding); null
 *                        for a null key or a tombstone (or whatever the converter made null).
 *                        Header values (both forms) are the SimpleHeaderConverter's bytes read
 *                        as UTF-8 text (null for a null header).
 *   --kafka BROKERS      Produce the converted key/value bytes (and headers) to BROKERS
 *                        (comma-separated host:port) with a KafkaProducer, to the record's topic
 *                        (partition chosen by Kafka from the key), and wait for every ack before
 *                        exiting. Producer defaults: acks=all, enable.idempotence=true,
 *                        max.in.flight.requests.per.connection=5, linger.ms=10,
 *                        batch.size=1048576 (1 MiB), buffer.memory=268435456 (256 MiB),
 *                        compression.type=none, max.request.size=10485760.
 *   --producer KEY=VALUE A KafkaProducer setting on top of those defaults (repeatable).
 *   --watch-stdin        Exit (status 3) when stdin reaches end of file: the parent that spawned
 *                        this JVM with a pipe on stdin is gone.
 *
 * Connector defaults (all overridable with --set):
 *
 *   name=spillway-debezium
 *   connector.class=io.debezium.connector.postgresql.PostgresConnector
 *   plugin.name=pgoutput, slot.drop.on.stop=false, publication.autocreate.mode=disabled,
 *   snapshot.mode=no_data (stream from an existing slot's confirmed position, no snapshot),
 *   offset.storage=org.apache.kafka.connect.storage.MemoryOffsetBackingStore,
 *   offset.flush.interval.ms=10000, topic.prefix=spillway,
 *   key.converter=value.converter=the --converter class (default the JsonConverter), and for
 *   the JsonConverter {key,value}.converter.schemas.enable from --schemas (the engine itself
 *   does not convert in Connect format; this program converts with the same settings),
 *   max.batch.size=20480, max.queue.size=81920, poll.interval.ms=10,
 *   record.processing.threads=AVAILABLE_CORES (throughput tuning).
 *
 * The caller sets the connection and the capture: database.hostname, database.port,
 * database.user, database.password, database.dbname, slot.name, publication.name,
 * table.include.list.
 *
 * Output: on a clean stop one line on stdout,
 *
 *   done records=<n> first_ms=<epoch ms> last_ms=<epoch ms> elapsed_ms=<last - first>
 *
 * first_ms is when the first record reached this program. last_ms is, with --out, when the last
 * record was written (to the buffered file), with --kafka when the last ack arrived. Both are 0
 * when there was no record. Progress goes to stderr ("connector task started", then the count
 * of records every 10 s). Errors go to stderr with a non-zero exit: 1 a failed run (the
 * engine stopped with an error, a write or produce failed), 2 bad arguments. Logging is
 * slf4j-simple on stderr; raise it with -Dorg.slf4j.simpleLogger.defaultLogLevel=info.
 */

import io.debezium.embedded.Connect;
import io.debezium.engine.DebeziumEngine;
import io.debezium.engine.RecordChangeEvent;
import io.debezium.engine.format.ChangeEventFormat;
import java.io.BufferedOutputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.IntStream;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.connect.header.Header;
import org.apache.kafka.connect.source.SourceRecord;
import org.apache.kafka.connect.storage.Converter;
import org.apache.kafka.connect.storage.SimpleHeaderConverter;

public final class DebeziumRun {
  private static final int EXIT_FAILED = 1;
  private static final int EXIT_USAGE = 2;
  private static final int EXIT_ORPHANED = 3;
  /** Batches at least this long are converted on several threads. */
  private static final int PARALLEL_FROM = 256;
  /** How often a progress line goes to stderr while running. */
  private static final long PROGRESS_EVERY_MS = 10_000;
  private static final String JSON_CONVERTER = "org.apache.kafka.connect.json.JsonConverter";

  // Arguments
  private final Properties props = new Properties();
  private final Map<String, Object> producerProps = new HashMap<>();
  private long count = 0;
  private long idleMs = 0;
  private boolean schemas = true;
  private String converterClass = JSON_CONVERTER;
  /** Whether the converter is the JsonConverter, whose output --out embeds as JSON. */
  private boolean json = true;
  private String outFile;
  private String brokers;
  private boolean watchStdin = false;

  // Run state
  private final Object lock = new Object();
  private ThreadLocal<Converters> converters;
  /** Every converter pair made, to close at the end. */
  private final List<Converters> allConverters = Collections.synchronizedList(new ArrayList<>());
  private OutputStream out;
  private KafkaProducer<byte[], byte[]> producer;
  private long handled = 0; // guarded by lock
  private boolean closed = false; // guarded by lock
  private volatile long firstMs = 0;
  private volatile long lastSeenMs = 0;
  private final AtomicLong lastAckMs = new AtomicLong(0);
  private final AtomicReference<Throwable> failure = new AtomicReference<>();
  private volatile boolean engineDone = false;
  private volatile String engineMessage;

  /** One pair of converters per thread, configured alike. */
  private static final class Converters {
    final Converter key;
    final Converter value;
    final SimpleHeaderConverter header = new SimpleHeaderConverter();

    Converters(String className) {
      key = newConverter(className);
      value = newConverter(className);
    }

    private static Converter newConverter(String className) {
      try {
        Class<?> c = Class.forName(className);
        if (!Converter.class.isAssignableFrom(c)) {
          throw new IllegalArgumentException("--converter " + className + " is not a "
              + Converter.class.getName());
        }
        return (Converter) c.getDeclaredConstructor().newInstance();
      } catch (ReflectiveOperationException e) {
        throw new IllegalArgumentException("--converter " + className + " cannot be made: " + e, e);
      }
    }

    void close() {
      for (Object c : new Object[] {key, value, header}) {
        if (c instanceof AutoCloseable closeable) {
          try {
            closeable.close();
          } catch (Exception e) {
            System.err.println("DebeziumRun: closing a converter failed: " + e);
          }
        }
      }
    }
  }

  public static void main(String[] args) {
    DebeziumRun run = new DebeziumRun();
    try {
      run.parse(args);
    } catch (IllegalArgumentException e) {
      System.err.println("DebeziumRun: " + e.getMessage());
      System.exit(EXIT_USAGE);
    }
    try {
      run.run();
    } catch (Throwable e) {
      e.printStackTrace(System.err);
      System.err.println("DebeziumRun failed: " + e.getMessage());
      System.exit(EXIT_FAILED);
    }
    System.exit(0);
  }

  private void parse(String[] args) {
    Map<String, String> sets = new LinkedHashMap<>();
    for (int i = 0; i < args.length; i++) {
      String arg = args[i];
      if (arg.equals("--watch-stdin")) {
        watchStdin = true;
        continue;
      }
      if (i + 1 >= args.length) throw new IllegalArgumentException(arg + " needs a value");
      String value = args[++i];
      switch (arg) {
        case "--set" -> {
          String[] kv = keyValue(arg, value);
          sets.put(kv[0], kv[1]);
        }
        case "--producer" -> {
          String[] kv = keyValue(arg, value);
          producerProps.put(kv[0], kv[1]);
        }
        case "--count" -> count = parseLong(arg, value);
        case "--idle-ms" -> idleMs = parseLong(arg, value);
        case "--schemas" -> {
          if (!value.equals("true") && !value.equals("false")) {
            throw new IllegalArgumentException("--schemas takes true or false, not " + value);
          }
          schemas = value.equals("true");
        }
        case "--converter" -> converterClass = value;
        case "--out" -> outFile = value;
        case "--kafka" -> brokers = value;
        default -> throw new IllegalArgumentException("unknown argument " + arg);
      }
    }
    if ((outFile == null) == (brokers == null)) {
      throw new IllegalArgumentException("give exactly one of --out FILE and --kafka BROKERS");
    }
    json = converterClass.equals(JSON_CONVERTER);
    Converters.newConverter(converterClass); // Fail early on a class that is no Converter.
    String converter = converterClass;
    String[][] defaults = {
      {"name", "spillway-debezium"},
      {"connector.class", "io.debezium.connector.postgresql.PostgresConnector"},
      {"plugin.name", "pgoutput"},
      {"slot.drop.on.stop", "false"},
      {"publication.autocreate.mode", "disabled"},
      {"snapshot.mode", "no_data"},
      {"offset.storage", "org.apache.kafka.connect.storage.MemoryOffsetBackingStore"},
      {"offset.flush.interval.ms", "10000"},
      {"topic.prefix", "spillway"},
      {"key.converter", converter},
      {"value.converter", converter},
      {"key.converter.schemas.enable", json ? String.valueOf(schemas) : null},
      {"value.converter.schemas.enable", json ? String.valueOf(schemas) : null},
      {"max.batch.size", "20480"},
      {"max.queue.size", "81920"},
      {"poll.interval.ms", "10"},
      {"record.processing.threads", "AVAILABLE_CORES"},
    };
    for (String[] d : defaults) {
      if (d[1] != null) props.setProperty(d[0], d[1]);
    }
    for (Map.Entry<String, String> e : sets.entrySet()) props.setProperty(e.getKey(), e.getValue());

    Object[][] producerDefaults = {
      {"acks", "all"},
      {"enable.idempotence", "true"},
      {"max.in.flight.requests.per.connection", "5"},
      {"linger.ms", "10"},
      {"batch.size", "1048576"},
      {"buffer.memory", "268435456"},
      {"compression.type", "none"},
      {"max.request.size", "10485760"},
      {"client.id", "spillway-debezium"},
    };
    for (Object[] d : producerDefaults) producerProps.putIfAbsent((String) d[0], d[1]);
  }

  private static String[] keyValue(String arg, String value) {
    int eq = value.indexOf('=');
    if (eq <= 0) throw new IllegalArgumentException(arg + " takes KEY=VALUE, not " + value);
    return new String[] {value.substring(0, eq), value.substring(eq + 1)};
  }

  private static long parseLong(String arg, String value) {
    try {
      long n = Long.parseLong(value);
      if (n < 0) throw new NumberFormatException();
      return n;
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(arg + " takes a number >= 0, not " + value);
    }
  }

  /** The converter settings: the properties under `prefix`, with the prefix stripped. */
  private Map<String, Object> converterConfig(String prefix) {
    Map<String, Object> config = new HashMap<>();
    for (String name : props.stringPropertyNames()) {
      if (name.startsWith(prefix)) config.put(name.substring(prefix.length()), props.getProperty(name));
    }
    return config;
  }

  private void run() throws Exception {
    Map<String, Object> keyConfig = converterConfig("key.converter.");
    Map<String, Object> valueConfig = converterConfig("value.converter.");
    converters = ThreadLocal.withInitial(() -> {
      Converters c = new Converters(converterClass);
      allConverters.add(c);
      c.key.configure(keyConfig, true);
      c.value.configure(valueConfig, false);
      c.header.configure(Map.of());
      return c;
    });
    converters.get(); // Fail early on a bad converter setting.

    if (outFile != null) {
      out = new BufferedOutputStream(new FileOutputStream(outFile), 1 << 20);
    } else {
      producerProps.put("bootstrap.servers", brokers);
      producer = new KafkaProducer<>(producerProps, new ByteArraySerializer(), new ByteArraySerializer());
    }
    if (watchStdin) watchStdin();

    DebeziumEngine<RecordChangeEvent<SourceRecord>> engine =
        DebeziumEngine.create(ChangeEventFormat.of(Connect.class))
            .using(props)
            .notifying(this::handleBatch)
            .using((success, message, error) -> {
              engineMessage = message;
              if (!success || error != null) {
                failure.compareAndSet(null, error != null ? error : new RuntimeException(message));
              }
              engineDone = true;
            })
            .using(new DebeziumEngine.ConnectorCallback() {
              @Override
              public void taskStarted() {
                System.err.println("DebeziumRun: connector task started");
              }
            })
            .build();
    ExecutorService executor = Executors.newSingleThreadExecutor(r -> {
      Thread t = new Thread(r, "debezium-engine");
      t.setDaemon(true);
      return t;
    });
    executor.execute(engine);

    long nextProgress = System.currentTimeMillis() + PROGRESS_EVERY_MS;
    while (true) {
      if (failure.get() != null || engineDone) break;
      long n;
      synchronized (lock) {
        n = handled;
      }
      if (System.currentTimeMillis() >= nextProgress) {
        System.err.println("DebeziumRun: " + n + " records so far");
        nextProgress += PROGRESS_EVERY_MS;
      }
      if (count > 0 && n >= count) break;
      if (idleMs > 0 && n > 0 && System.currentTimeMillis() - lastSeenMs >= idleMs) break;
      Thread.sleep(20);
    }
    boolean stoppedItself = engineDone;
    synchronized (lock) {
      closed = true;
    }
    if (!stoppedItself) {
      try {
        engine.close();
      } catch (IllegalStateException e) {
        // It stopped by itself meanwhile; the completion callback has the reason.
      }
    }
    executor.shutdown();
    executor.awaitTermination(30, TimeUnit.SECONDS);

    long lastMs;
    if (out != null) {
      out.close();
      lastMs = lastSeenMs;
    } else {
      producer.flush();
      producer.close();
      lastMs = lastAckMs.get();
    }
    synchronized (allConverters) {
      for (Converters c : allConverters) c.close();
    }
    Throwable failed = failure.get();
    if (failed != null) {
      throw new RuntimeException("the run failed: " + failed.getMessage(), failed);
    }
    long n;
    synchronized (lock) {
      n = handled;
    }
    if (stoppedItself) {
      throw new RuntimeException("the engine stopped after " + n + " records: " + engineMessage);
    }
    long first = n > 0 ? firstMs : 0;
    long last = n > 0 ? lastMs : 0;
    System.out.println("done records=" + n + " first_ms=" + first + " last_ms=" + last
        + " elapsed_ms=" + (last - first));
    System.out.flush();
  }

  private void handleBatch(
      List<RecordChangeEvent<SourceRecord>> events,
      DebeziumEngine.RecordCommitter<RecordChangeEvent<SourceRecord>> committer)
      throws InterruptedException {
    long now = System.currentTimeMillis();
    if (firstMs == 0) firstMs = now;
    synchronized (lock) {
      if (closed) return;
      int take = events.size();
      if (count > 0) take = (int) Math.min(take, count - handled);
      if (take <= 0) return;
      List<SourceRecord> records = new ArrayList<>(take);
      for (int i = 0; i < take; i++) records.add(events.get(i).record());
      byte[][] keys = new byte[take][];
      byte[][] values = new byte[take][];
      IntStream indexes = IntStream.range(0, take);
      if (take >= PARALLEL_FROM) indexes = indexes.parallel();
      indexes.forEach(i -> {
        SourceRecord r = records.get(i);
        Converters c = converters.get();
        keys[i] = c.key.fromConnectData(r.topic(), r.keySchema(), r.key());
        values[i] = c.value.fromConnectData(r.topic(), r.valueSchema(), r.value());
      });
      try {
        for (int i = 0; i < take; i++) {
          if (out != null) writeLine(records.get(i), keys[i], values[i]);
          else produce(records.get(i), keys[i], values[i]);
        }
      } catch (Exception e) {
        failure.compareAndSet(null, e);
        closed = true;
        return;
      }
      handled += take;
      lastSeenMs = System.currentTimeMillis();
      for (int i = 0; i < take; i++) committer.markProcessed(events.get(i));
      committer.markBatchFinished();
    }
  }

  private static final byte[] NULL = "null".getBytes(StandardCharsets.UTF_8);

  private void writeLine(SourceRecord r, byte[] key, byte[] value) throws IOException {
    StringBuilder head = new StringBuilder(64);
    head.append("{\"topic\":");
    quote(head, r.topic());
    if (json) {
      head.append(",\"key\":");
      out.write(head.toString().getBytes(StandardCharsets.UTF_8));
      out.write(key == null ? NULL : key);
      out.write(",\"value\":".getBytes(StandardCharsets.UTF_8));
      out.write(value == null ? NULL : value);
    } else {
      head.append(",\"keyBase64\":");
      base64(head, key);
      head.append(",\"valueBase64\":");
      base64(head, value);
      out.write(head.toString().getBytes(StandardCharsets.UTF_8));
    }
    StringBuilder tail = new StringBuilder(32);
    tail.append(",\"headers\":{");
    boolean firstHeader = true;
    SimpleHeaderConverter hc = converters.get().header;
    for (Header h : r.headers()) {
      if (!firstHeader) tail.append(',');
      firstHeader = false;
      quote(tail, h.key());
      tail.append(':');
      byte[] bytes = hc.fromConnectHeader(r.topic(), h.key(), h.schema(), h.value());
      if (bytes == null) tail.append("null");
      else quote(tail, new String(bytes, StandardCharsets.UTF_8));
    }
    tail.append("}}\n");
    out.write(tail.toString().getBytes(StandardCharsets.UTF_8));
  }

  /** `bytes` as a JSON string of their standard base64, or null. */
  private static void base64(StringBuilder sb, byte[] bytes) {
    if (bytes == null) sb.append("null");
    else sb.append('"').append(Base64.getEncoder().encodeToString(bytes)).append('"');
  }

  private static void quote(StringBuilder sb, String s) {
    sb.append('"');
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      switch (c) {
        case '"' -> sb.append("\\\"");
        case '\\' -> sb.append("\\\\");
        case '\n' -> sb.append("\\n");
        case '\r' -> sb.append("\\r");
        case '\t' -> sb.append("\\t");
        default -> {
          if (c < 0x20) sb.append(String.format("\\u%04x", (int) c));
          else sb.append(c);
        }
      }
    }
    sb.append('"');
  }

  private void produce(SourceRecord r, byte[] key, byte[] value) {
    RecordHeaders headers = new RecordHeaders();
    SimpleHeaderConverter hc = converters.get().header;
    for (Header h : r.headers()) {
      headers.add(h.key(), hc.fromConnectHeader(r.topic(), h.key(), h.schema(), h.value()));
    }
    ProducerRecord<byte[], byte[]> record =
        new ProducerRecord<>(r.topic(), null, r.timestamp(), key, value, headers);
    producer.send(record, (metadata, error) -> {
      if (error != null) {
        failure.compareAndSet(null, error);
        return;
      }
      lastAckMs.accumulateAndGet(System.currentTimeMillis(), Math::max);
    });
  }

  /** Exit when stdin closes: the parent process that holds its other end is gone. */
  private static void watchStdin() {
    Thread t = new Thread(() -> {
      try {
        byte[] buffer = new byte[256];
        while (System.in.read(buffer) >= 0) {
          // Nothing is ever sent; only the end of file matters.
        }
      } catch (IOException e) {
        // Treat a broken stdin like its end.
      }
      System.err.println("DebeziumRun: stdin closed (the parent is gone); exiting");
      Runtime.getRuntime().halt(EXIT_ORPHANED);
    }, "stdin-watch");
    t.setDaemon(true);
    t.start();
  }
}
