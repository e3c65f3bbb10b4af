package org.finetune.savedmodel;

import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.tensorflow.proto.AttrValue;
import org.tensorflow.proto.FunctionDef;
import org.tensorflow.proto.MetaGraphDef;
import org.tensorflow.proto.NodeDef;

/**
 * Ops a model has no business running when it is loaded or served: they read or write files,
 * talk to the network, or run Python. TensorFlow treats a SavedModel as a program (loading one
 * runs its restore and init ops), so finetune reads the graph and every function in its library
 * before the runtime sees it and refuses a model that holds any of these, unless the caller
 * trusts it. The saver's own file ops ({@code SaveV2}, {@code RestoreV2},
 * {@code MergeV2Checkpoints}, ...) are expected in the functions and nodes that only the saver
 * (its {@code saver_def} save and restore targets) reaches, and refused anywhere else. Asset file
 * names must stay inside the model's {@code assets/} folder.
 */
public final class UnsafeOps {
  /** Why an op is refused. */
  public enum Kind {
    FILES("reads or writes files"),
    NETWORK("talks to other processes or machines"),
    PYTHON("runs Python code");

    private final String what;

    Kind(String what) {
      this.what = what;
    }

    public String what() {
      return what;
    }
  }

  /** The op types refused, by what they do; every name is an op of the TensorFlow 2.18 registry (tested). */
  public static final Map<String, Kind> REFUSED;

  /** File ops the saver needs in its save and restore functions. */
  public static final Set<String> SAVER_OPS = Set.of("SaveV2", "RestoreV2", "MergeV2Checkpoints", "Save",
      "SaveSlices", "Restore", "RestoreSlice");

  static {
    Map<String, Kind> m = new LinkedHashMap<>();
    for (String op : List.of(
        // Files, directly.
        "ReadFile", "WriteFile", "MatchingFiles", "FileSystemSetConfiguration", "ImmutableConst",
        // Checkpoints and tables read from files.
        "Save", "SaveSlices", "SaveV2", "Restore", "RestoreSlice", "RestoreV2", "MergeV2Checkpoints",
        "DTensorRestoreV2", "LoadAndRemapMatrix", "InitializeTableFromTextFile", "InitializeTableFromTextFileV2",
        "Skipgram",
        // Readers and datasets over files.
        "WholeFileReader", "WholeFileReaderV2", "TextLineReader", "TextLineReaderV2", "FixedLengthRecordReader",
        "FixedLengthRecordReaderV2", "TFRecordReader", "TFRecordReaderV2", "LMDBReader", "RecordInput",
        "TextLineDataset", "TFRecordDataset", "TFRecordDatasetV2", "FixedLengthRecordDataset",
        "FixedLengthRecordDatasetV2", "CSVDataset", "CSVDatasetV2", "ExperimentalCSVDataset", "SqlDataset",
        "ExperimentalSqlDataset", "LMDBDataset", "ExperimentalLMDBDataset", "MatchingFilesDataset",
        "ExperimentalMatchingFilesDataset", "SaveDataset", "SaveDatasetV2", "LoadDataset", "SnapshotDataset",
        "SnapshotDatasetV2", "SnapshotDatasetReader", "SnapshotNestedDatasetReader", "SnapshotChunkDataset",
        "DistributedSave", "DatasetToTFRecord", "ExperimentalDatasetToTFRecord", "CacheDataset", "CacheDatasetV2",
        // Writers to files: summaries, prints to a file, debugger dumps.
        "CreateSummaryFileWriter", "CreateSummaryDbWriter", "PrintV2", "DebugIdentity", "DebugIdentityV2",
        "DebugIdentityV3", "DebugNanCount", "DebugNumericSummary", "DebugNumericSummaryV2")) {
      m.put(op, Kind.FILES);
    }
    for (String op : List.of("RpcClient", "RpcServer", "RpcServerStart", "RpcServerRegister", "RpcCall",
        "RpcCheckStatus", "RpcGetValue", "RemoteCall", "DataServiceDataset", "DataServiceDatasetV2",
        "DataServiceDatasetV3", "DataServiceDatasetV4", "RegisterDataset", "RegisterDatasetV2",
        "CollectiveInitializeCommunicator", "CollectiveReduce", "CollectiveReduceV2", "CollectiveReduceV3",
        "CollectiveGather", "CollectiveGatherV2", "CollectiveBcastSend", "CollectiveBcastSendV2",
        "CollectiveBcastRecv", "CollectiveBcastRecvV2", "CollectivePermute", "CollectiveAllToAllV2",
        "CollectiveAllToAllV3", "CollectiveReduceScatterV2", "CollectiveAssignGroupV2")) {
      m.put(op, Kind.NETWORK);
    }
    for (String op : List.of("PyFunc", "PyFuncStateless", "EagerPyFunc")) {
      m.put(op, Kind.PYTHON);
    }
    REFUSED = java.util.Collections.unmodifiableMap(m);
  }

  /** One refused op: its type, the function holding it ("" for the top-level graph) and its node. */
  public record Finding(String op, Kind kind, String function, String node) {
    public String where() {
      return function.isEmpty() ? "graph node " + node : "function " + function + " (node " + node + ")";
    }
  }

  /** What the audit found: refused ops, and asset file names that leave the assets folder. */
  public record Report(List<Finding> findings, List<String> escapingAssets) {
    public boolean clean() {
      return findings.isEmpty() && escapingAssets.isEmpty();
    }

    /** One line for an error message: op types with where they sit, and the assets. */
    public String summary() {
      Map<String, Set<String>> byOp = new LinkedHashMap<>();
      for (Finding f : findings) {
        byOp.computeIfAbsent(f.op() + " (" + f.kind().what() + ")", k -> new TreeSet<>())
            .add(f.function().isEmpty() ? "the graph" : "function " + f.function());
      }
      List<String> parts = new ArrayList<>();
      byOp.forEach((op, where) -> parts.add(op + " in " + String.join(", ", where)));
      escapingAssets.forEach(a -> parts.add("asset '" + a + "' outside assets/"));
      return String.join("; ", parts);
    }
  }

  private UnsafeOps() {}

  /** Audits one MetaGraph. */
  public static Report audit(MetaGraphDef meta) {
    Map<String, FunctionDef> library = new HashMap<>();
    meta.getGraphDef().getLibrary().getFunctionList().forEach(f -> library.put(f.getSignature().getName(), f));
    List<NodeDef> nodes = meta.getGraphDef().getNodeList();
    Set<String> saverNodes = saverNodes(meta, nodes);
    Set<String> saverFunctions = new HashSet<>();
    Set<String> otherFunctions = new HashSet<>();
    for (NodeDef n : nodes) {
      reach(n, library, saverNodes.contains(n.getName()) ? saverFunctions : otherFunctions);
    }
    List<Finding> findings = new ArrayList<>();
    for (NodeDef n : nodes) {
      Kind k = REFUSED.get(n.getOp());
      if (k != null && !(SAVER_OPS.contains(n.getOp()) && saverNodes.contains(n.getName()))) {
        findings.add(new Finding(n.getOp(), k, "", n.getName()));
      }
    }
    for (FunctionDef f : library.values()) {
      String name = f.getSignature().getName();
      boolean saverOnly = saverFunctions.contains(name) && !otherFunctions.contains(name);
      for (NodeDef n : f.getNodeDefList()) {
        Kind k = REFUSED.get(n.getOp());
        if (k != null && !(SAVER_OPS.contains(n.getOp()) && saverOnly)) {
          findings.add(new Finding(n.getOp(), k, name, n.getName()));
        }
      }
    }
    findings.sort(java.util.Comparator.comparing(Finding::function).thenComparing(Finding::node));
    List<String> escaping = new ArrayList<>();
    meta.getAssetFileDefList().forEach(a -> {
      String file = a.getFilename();
      Path p = Path.of(file);
      if (file.isEmpty() || p.isAbsolute() || !Path.of("assets").resolve(p).normalize().startsWith("assets")
          || file.contains("\\")) {
        escaping.add(file);
      }
    });
    return new Report(findings, escaping);
  }

  /** The top-level nodes the saver's save and restore targets depend on. */
  private static Set<String> saverNodes(MetaGraphDef meta, List<NodeDef> nodes) {
    if (!meta.hasSaverDef()) {
      return Set.of();
    }
    return Ancestors.of(nodes, List.of(meta.getSaverDef().getSaveTensorName(), meta.getSaverDef().getRestoreOpName()),
        Ancestors.Edges.DATA_AND_CONTROL);
  }



  /** Adds every function {@code node} calls, directly or through other functions, to {@code into}. */
  private static void reach(NodeDef node, Map<String, FunctionDef> library, Set<String> into) {
    Deque<String> todo = new ArrayDeque<>(called(node, library));
    while (!todo.isEmpty()) {
      String f = todo.pop();
      if (!into.add(f)) {
        continue;
      }
      for (NodeDef n : library.get(f).getNodeDefList()) {
        todo.addAll(called(n, library));
      }
    }
  }

  private static List<String> called(NodeDef node, Map<String, FunctionDef> library) {
    List<String> out = new ArrayList<>();
    if (library.containsKey(node.getOp())) {
      out.add(node.getOp());
    }
    for (AttrValue v : node.getAttrMap().values()) {
      if (v.hasFunc() && library.containsKey(v.getFunc().getName())) {
        out.add(v.getFunc().getName());
      }
      if (v.hasList()) {
        v.getList().getFuncList().stream().map(org.tensorflow.proto.NameAttrList::getName)
            .filter(library::containsKey).forEach(out::add);
      }
    }
    return out;
  }
}
