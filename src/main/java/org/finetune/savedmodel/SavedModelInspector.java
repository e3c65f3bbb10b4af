package org.finetune.savedmodel;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import org.finetune.hint.Setting;
import org.tensorflow.proto.SavedObjectGraphOuterClass.SavedObject;
import org.tensorflow.proto.SavedObjectGraphOuterClass.SavedObjectGraph;
import org.tensorflow.proto.SignatureDef;
import org.tensorflow.proto.TensorInfo;

/** Reads a SavedModel directory as data and describes it ({@link ModelInfo}); starts no session. */
public final class SavedModelInspector {
  /** The signature Keras exports and TF Serving call by default. */
  public static final String DEFAULT_SIGNATURE = "serving_default";

  private SavedModelInspector() {}

  /** Inspects the {@code serve} MetaGraph through its default signature. */
  public static ModelInfo inspect(Path dir) {
    return inspect(SavedModelDirectory.open(dir, SavedModelDirectory.SERVE), Optional.empty());
  }

  /**
   * Describes an opened directory through {@code signature} (default: {@code serving_default}, or
   * the only signature there is).
   *
   * @throws InvalidModelException when the signature does not exist (the message lists those that do)
   */
  public static ModelInfo inspect(SavedModelDirectory model, Optional<String> signature) {
    Map<String, SignatureInfo> signatures = new LinkedHashMap<>();
    model.signatureDefs().forEach((name, def) -> signatures.put(name, signatureInfo(name, def)));
    String chosen = chooseSignature(model.dir(), signatures, signature);
    SignatureInfo sig = signatures.get(chosen);
    VariableResolver.Resolved resolved = VariableResolver.resolve(model.metaGraph(), sig);
    ExportPath path = exportPath(model);
    Map<String, List<String>> nested = Map.of();
    if (path == ExportPath.KERAS3_EXPORT || path == ExportPath.TF_SAVED_MODEL_KERAS3) {
      KerasLayerNames.Named named = KerasLayerNames.named(model.metaGraph(), resolved.variables());
      resolved = new VariableResolver.Resolved(named.variables(), resolved.indexByHandle(), resolved.calls());
      nested = named.nestedModels();
    }
    List<String> order = List.of();
    if (path == ExportPath.TF_KERAS) {
      TfKerasLayerNames.Named named = TfKerasLayerNames.named(model.dir().resolve("keras_metadata.pb"),
          model.metaGraph(), resolved.variables());
      resolved = new VariableResolver.Resolved(named.variables(), resolved.indexByHandle(), resolved.calls());
      order = named.layerOrder();
    }
    List<LayerInfo> layers = groupLayers(resolved.variables());
    if (!order.isEmpty()) {
      // Keras's order (model.layers), where the read order puts a layer whose weights the serving
      // function never reads (a quantization wrapper's step counter) last; layers it does not name after.
      List<String> keras = order;
      layers = new ArrayList<>(layers);
      layers.sort(java.util.Comparator.comparingInt(l -> keras.contains(l.name()) ? keras.indexOf(l.name())
          : Integer.MAX_VALUE));
    }
    OpAudit.Result audit = OpAudit.run(model.metaGraph(), sig, resolved, layers);
    return new ModelInfo(model.dir(), path, Set.copyOf(model.metaGraph().getMetaInfoDef().getTagsList()),
        signatures, chosen, resolved.variables(), layers, audit.opCounts(), audit.gaps(), nested);
  }

  static String chooseSignature(Path dir, Map<String, SignatureInfo> signatures, Optional<String> requested) {
    if (requested.isPresent()) {
      if (!signatures.containsKey(requested.get())) {
        throw new InvalidModelException(dir, "no signature '" + requested.get() + "' in " + dir + "; it has "
            + (signatures.isEmpty() ? "none" : String.join(", ", signatures.keySet())), Setting.SIGNATURE,
            "choose one of them");
      }
      return requested.get();
    }
    if (signatures.isEmpty()) {
      Path pb = dir.resolve("saved_model.pb");
      throw new InvalidModelException(pb, pb + " has no signatures, so nothing in it can be run; export the model with"
          + " one (Keras model.export(), or tf.saved_model.save(model, dir, signatures=...))");
    }
    if (signatures.containsKey(DEFAULT_SIGNATURE)) {
      return DEFAULT_SIGNATURE;
    }
    if (signatures.size() == 1) {
      return signatures.keySet().iterator().next();
    }
    throw new InvalidModelException(dir, dir + " has no '" + DEFAULT_SIGNATURE + "' signature; it has "
        + String.join(", ", signatures.keySet()), Setting.SIGNATURE, "choose one of them");
  }

  private static SignatureInfo signatureInfo(String name, SignatureDef def) {
    return new SignatureInfo(name, def.getMethodName(), specs(def.getInputsMap()), specs(def.getOutputsMap()));
  }

  private static List<TensorSpec> specs(Map<String, TensorInfo> infos) {
    List<TensorSpec> out = new ArrayList<>();
    new java.util.TreeMap<>(infos).forEach((key, info) -> {
      List<Long> dims = new ArrayList<>();
      info.getTensorShape().getDimList().forEach(d -> dims.add(d.getSize()));
      out.add(new TensorSpec(key, info.getName(), DTypes.name(info.getDtype()), dims,
          !info.getTensorShape().getUnknownRank()));
    });
    return out;
  }

  /** Layers in the order their first variable appears (the order the serving function reads them). */
  static List<LayerInfo> groupLayers(List<VariableInfo> variables) {
    Map<String, List<VariableInfo>> byLayer = new LinkedHashMap<>();
    for (VariableInfo v : variables) {
      if (!v.weight()) {
        continue;
      }
      byLayer.computeIfAbsent(v.layer(), k -> new ArrayList<>()).add(v);
    }
    List<LayerInfo> layers = new ArrayList<>();
    byLayer.forEach((name, vars) -> layers.add(new LayerInfo(name, vars)));
    return layers;
  }

  static ExportPath exportPath(SavedModelDirectory model) {
    if (model.hasKerasMetadata()) {
      return ExportPath.TF_KERAS;
    }
    SavedObjectGraph objects = model.metaGraph().getObjectGraphDef();
    if (objects.getNodesCount() == 0) {
      return ExportPath.TF1;
    }
    Set<String> rootChildren = new java.util.HashSet<>();
    SavedObject root = objects.getNodes(0);
    root.getChildrenList().forEach(c -> rootChildren.add(c.getLocalName()));
    if (rootChildren.contains("_all_variables") && rootChildren.contains("_misc_assets")) {
      return ExportPath.KERAS3_EXPORT;
    }
    if (rootChildren.contains("_layers") && rootChildren.contains("_operations")) {
      return ExportPath.TF_SAVED_MODEL_KERAS3;
    }
    return ExportPath.TF_SAVED_MODEL;
  }
}
