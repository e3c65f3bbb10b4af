package org.finetune.train;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Where a new head sits, for exporters: its spec, the flat-graph tensor it reads (a name of
 * {@link org.finetune.model.FlatSignature#graphDef()}), and its variables' read tensors
 * (model-graph names) by name.
 */
public record HeadPlacement(HeadSpec spec, String features, Map<String, String> reads) {
  public HeadPlacement {
    reads = Collections.unmodifiableMap(new LinkedHashMap<>(reads));
  }
}
