package org.finetune.train;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.finetune.data.NpyArray;
import org.finetune.model.FlatSignature;
import org.finetune.model.KerasSavedModel;
import org.finetune.savedmodel.TensorNames;
import org.tensorflow.GraphOperation;
import org.tensorflow.Operation;
import org.tensorflow.Tensor;
import org.tensorflow.proto.DataType;
import org.tensorflow.proto.NodeDef;
import org.tensorflow.types.TString;

/**
 * Text a string input can take: the words of the lookup tables its values reach (a StringLookup's
 * or TextVectorization's vocabulary, read from the loaded tables), joined by spaces where the text
 * is split into words before the lookup. Random text of unknown words would only ever reach the
 * out-of-vocabulary row.
 */
final class StringInputs {
  private static final Set<String> LOOKUPS = Set.of("LookupTableFindV2", "LookupTableFind");
  private static final Set<String> SPLITS = Set.of("StringSplitV2", "StringSplit", "RegexSplitWithOffsets",
      "WhitespaceTokenizeWithOffsets", "WhitespaceTokenizeWithOffsetsV2", "UnicodeScriptTokenizeWithOffsets");

  /**
   * The words of the tables an input's values are looked up in (sorted, empty keys and Keras's
   * {@code [UNK]} left out), and whether the input is split into words first.
   */
  record Vocabulary(List<String> words, boolean split) {}

  private StringInputs() {}

  /** Input key to its vocabulary, for the string inputs whose values reach a lookup table. */
  static Map<String, Vocabulary> of(KerasSavedModel model, FlatSignature flat) {
    Map<String, NodeDef> nodes = new HashMap<>();
    flat.graphDef().getNodeList().forEach(n -> nodes.put(n.getName(), n));
    Map<String, String> inputByPlaceholder = new HashMap<>();
    flat.inputs().forEach((key, tensor) -> inputByPlaceholder.put(TensorNames.nodeOf(flat.local(tensor)), key));
    Map<String, Set<String>> words = new LinkedHashMap<>();
    Map<String, Boolean> split = new HashMap<>();
    Map<String, List<String>> tables = new HashMap<>();
    for (NodeDef n : flat.graphDef().getNodeList()) {
      if (!LOOKUPS.contains(n.getOp()) || n.getInputCount() < 2
          || n.getAttrMap().get("Tin").getType() != DataType.DT_STRING) {
        continue;
      }
      Set<String> visited = new HashSet<>();
      Set<String> sources = IndexRanges.valueSources(nodes, n.getInput(1), inputByPlaceholder.keySet(), visited);
      if (sources.isEmpty()) {
        continue;
      }
      boolean splits = visited.stream().map(nodes::get).anyMatch(v -> v != null && SPLITS.contains(v.getOp()));
      List<String> keys = tables.computeIfAbsent(n.getInput(0), t -> keys(model, flat, n));
      for (String placeholder : sources) {
        String key = inputByPlaceholder.get(placeholder);
        words.computeIfAbsent(key, k -> new java.util.TreeSet<>()).addAll(keys);
        split.merge(key, splits, Boolean::logicalOr);
      }
    }
    Map<String, Vocabulary> out = new LinkedHashMap<>();
    words.forEach((key, w) -> out.put(key, new Vocabulary(List.copyOf(w), split.get(key))));
    return out;
  }

  /**
   * Random text of {@code shape} from a vocabulary: one word each, or 1 to 8 words joined by
   * spaces where the text is split; "text" (a word Keras's vocabularies rarely hold) where the
   * vocabulary is empty.
   */
  static NpyArray random(long[] shape, Vocabulary vocabulary, Random random) {
    long n = 1;
    for (long d : shape) {
      n *= d;
    }
    String[] values = new String[Math.toIntExact(n)];
    List<String> w = vocabulary.words().isEmpty() ? List.of("text") : vocabulary.words();
    for (int i = 0; i < values.length; i++) {
      int count = vocabulary.split() ? 1 + random.nextInt(8) : 1;
      StringBuilder b = new StringBuilder();
      for (int j = 0; j < count; j++) {
        b.append(j > 0 ? " " : "").append(w.get(random.nextInt(w.size())));
      }
      values[i] = b.toString();
    }
    return NpyArray.ofStrings(shape, values);
  }

  /** The string keys of the table a lookup reads, exported from the loaded table (once per table). */
  private static List<String> keys(KerasSavedModel model, FlatSignature flat, NodeDef lookup) {
    String handle = flat.imported(TensorNames.nodeOf(lookup.getInput(0)));
    org.tensorflow.Graph graph = model.graph();
    GraphOperation table = graph.operation(handle);
    if (table == null) {
      return List.of();
    }
    int index = TensorNames.indexOf(lookup.getInput(0));
    Operation export = org.tensorflow.op.Ops.create(graph).scope().opBuilder("LookupTableExportV2", "check_table_keys")
        .addInput(table.output(index)).setAttr("Tkeys", DataType.DT_STRING)
        .setAttr("Tvalues", lookup.getAttrMap().get("Tout").getType()).build();
    List<String> out = new ArrayList<>();
    Map<String, Tensor> result = model.run(Map.of(), List.of(export.name() + ":0"));
    try (Tensor keys = result.values().iterator().next()) {
      ((TString) keys).scalars().forEach(s -> {
        String word = s.getObject();
        if (!word.isEmpty() && !word.equals("[UNK]")) {
          out.add(word);
        }
      });
    }
    return out;
  }
}
