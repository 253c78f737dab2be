// An independent Avro peer for sitemon's interop test: Apache Avro's reference implementation
// (Java, from Maven Central; see pom.xml), run by scripts/avro-peer. It knows the schemas only
// from the .avsc files it is given and computes their fingerprints itself.
//
//   fingerprint FILE...      one line per file: FILE <TAB> CRC-64-AVRO fingerprint as the 8
//                            bytes of a single-object header (hex) <TAB> Parsing Canonical Form
//   encode SCHEMA            stdin: one datum per line in Avro's JSON encoding; stdout: each as
//                            single-object bytes (hex), written by BinaryMessageEncoder
//   decode READER WRITER...  stdin: single-object records (hex), one per line; stdout: each
//                            decoded by BinaryMessageDecoder (writer schema looked up by the
//                            header's fingerprint among READER and WRITER...) as JSON, or
//                            `error: ...` when it cannot be decoded

import java.io.BufferedReader;
import java.io.File;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.HexFormat;

import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.BinaryMessageEncoder;

public class AvroPeer {
  static Schema parse(String path) throws Exception {
    return new Schema.Parser().parse(new File(path));
  }

  static BufferedReader stdin() {
    return new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
  }

  public static void main(String[] args) throws Exception {
    // UTF-8 whatever the locale (Java 17 prints in the locale's charset otherwise).
    System.setOut(new PrintStream(new FileOutputStream(FileDescriptor.out), true, StandardCharsets.UTF_8));
    HexFormat hex = HexFormat.of();
    switch (args.length == 0 ? "" : args[0]) {
      case "fingerprint" -> {
        for (int i = 1; i < args.length; i++) {
          Schema schema = parse(args[i]);
          long fp = SchemaNormalization.parsingFingerprint64(schema);
          byte[] le = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(fp).array();
          System.out.println(args[i] + "\t" + hex.formatHex(le) + "\t"
              + SchemaNormalization.toParsingForm(schema));
        }
      }
      case "encode" -> {
        Schema schema = parse(args[1]);
        GenericDatumReader<GenericRecord> json = new GenericDatumReader<>(schema);
        BinaryMessageEncoder<GenericRecord> encoder = new BinaryMessageEncoder<>(GenericData.get(), schema);
        BufferedReader in = stdin();
        for (String line; (line = in.readLine()) != null; ) {
          if (line.isBlank()) continue;
          GenericRecord record = json.read(null, DecoderFactory.get().jsonDecoder(schema, line));
          ByteBuffer bytes = encoder.encode(record);
          byte[] out = new byte[bytes.remaining()];
          bytes.get(out);
          System.out.println(hex.formatHex(out));
        }
      }
      case "decode" -> {
        BinaryMessageDecoder<GenericRecord> decoder =
            new BinaryMessageDecoder<>(GenericData.get(), parse(args[1]));
        for (int i = 2; i < args.length; i++) decoder.addSchema(parse(args[i]));
        BufferedReader in = stdin();
        for (String line; (line = in.readLine()) != null; ) {
          if (line.isBlank()) continue;
          try {
            GenericRecord record = decoder.decode(hex.parseHex(line.trim()));
            System.out.println(GenericData.get().toString(record));
          } catch (Exception e) {
            System.out.println("error: " + e.getClass().getSimpleName() + ": " + e.getMessage());
          }
        }
      }
      default -> {
        System.err.println("usage: AvroPeer fingerprint FILE... | encode SCHEMA | decode READER WRITER...");
        System.exit(64);
      }
    }
  }
}
