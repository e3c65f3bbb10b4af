package org.finetune.graph;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.tensorflow.Graph;
import org.tensorflow.GraphOperation;
import org.tensorflow.Operand;
import org.tensorflow.Output;
import org.tensorflow.Result;
import org.tensorflow.Session;
import org.tensorflow.Tensor;
import org.tensorflow.ndarray.Shape;
import org.tensorflow.op.Ops;
import org.tensorflow.op.core.Placeholder;
import org.tensorflow.proto.GraphDef;
import org.tensorflow.types.TFloat32;
import org.tensorflow.types.TFloat64;
import org.tensorflow.types.TInt32;

/**
 * The marked gradients equal the runtime's own (float64 products, every adjoint combination,
 * matrix and broadcast operands) and the fused cross-entropy's; forward values do not change.
 */
class MarkedGradientsTest {
  private static final Random RANDOM = new Random(11);

  /** One product case: shapes of x and y, adjoints, and whether y is a constant (a known matrix). */
  private record Case(long[] x, long[] y, boolean adjX, boolean adjY, boolean constY) {}

  @Test
  void productGradientsEqualTheRuntimes() {
    CustomGradients.ensureRegistered();
    List<Case> cases = List.of(
        new Case(new long[] {2, 3, 4}, new long[] {4, 5}, false, false, true),   // Dense on a sequence
        new Case(new long[] {2, 3, 4}, new long[] {5, 4}, false, true, true),    // tied output projection
        new Case(new long[] {3, 4}, new long[] {4, 5}, false, false, true),      // plain matrices
        new Case(new long[] {2, 4, 3}, new long[] {4, 5}, true, false, true),    // adjoint x: general rule
        new Case(new long[] {2, 3, 4}, new long[] {2, 4, 5}, false, false, false),
        new Case(new long[] {2, 3, 4}, new long[] {2, 5, 4}, false, true, false),
        new Case(new long[] {2, 4, 3}, new long[] {2, 4, 5}, true, false, false),
        new Case(new long[] {2, 4, 3}, new long[] {2, 5, 4}, true, true, false),
        new Case(new long[] {2, 1, 3, 4}, new long[] {5, 4, 6}, false, false, false), // broadcast both ways
        new Case(new long[] {2, 3, 4}, new long[] {4, 5}, false, false, false));  // matrix not known statically
    for (Case c : cases) {
      double[] xv = random(c.x());
      double[] yv = random(c.y());
      GraphDef def = productGraph(c, yv);
      List<double[]> plain = gradients(def, xv, c);
      GraphDef marked = MarkedGradients.forTraining(def);
      assertTrue(marked.getNodeList().stream().anyMatch(n -> n.getOp().equals("Print")), "no mark in " + c);
      List<double[]> ours = gradients(marked, xv, c);
      String what = java.util.Arrays.toString(c.x()) + " x " + java.util.Arrays.toString(c.y()) + " adj "
          + c.adjX() + "/" + c.adjY();
      assertArrayEquals(plain.get(0), ours.get(0), 0.0, what + ": forward changed");
      assertArrayEquals(plain.get(1), ours.get(1), 1e-12, what + ": d/dx");
      assertArrayEquals(plain.get(2), ours.get(2), 1e-12, what + ": d/dy");
    }
  }

  @Test
  void markedGradientsBuildNoBatchMatMulV3() {
    CustomGradients.ensureRegistered();
    Case c = new Case(new long[] {2, 3, 4}, new long[] {5, 4}, false, true, true);
    GraphDef marked = MarkedGradients.forTraining(productGraph(c, random(c.y())));
    try (Graph g = new Graph()) {
      g.importGraphDef(marked);
      g.addGradients("grad", new Output<?>[] {g.output("loss")}, new Output<?>[] {g.output("x"), g.output("y")}, null);
      List<String> types = new ArrayList<>();
      for (Iterator<GraphOperation> it = g.operations(); it.hasNext(); ) {
        GraphOperation op = it.next();
        if (op.name().startsWith("grad")) {
          types.add(op.type());
        }
      }
      assertFalse(types.contains("BatchMatMulV3"), types.toString());
      assertTrue(types.contains("MatMul"), types.toString());
    }
  }

  @Test
  void crossEntropyEqualsTheFusedKernel() {
    CustomGradients.ensureRegistered();
    int batch = 3;
    int positions = 4;
    int classes = 7;
    float[] logits = new float[batch * positions * classes];
    for (int i = 0; i < logits.length; i++) {
      logits[i] = (float) (RANDOM.nextGaussian() * 3);
    }
    logits[5 * classes + 2] = 80f; // a confident row: probabilities of the others underflow
    int[] labels = new int[batch * positions];
    for (int i = 0; i < labels.length; i++) {
      labels[i] = RANDOM.nextInt(classes);
    }
    labels[5] = 4; // confidently wrong: loss ~ 80
    float[] weights = new float[labels.length];
    for (int i = 0; i < weights.length; i++) {
      weights[i] = (float) RANDOM.nextGaussian();
    }
    try (Graph g = new Graph(); Session s = new Session(g)) {
      Ops tf = Ops.create(g);
      Placeholder<TFloat32> z = tf.placeholder(TFloat32.class, Placeholder.shape(Shape.of(batch, positions, classes)));
      Operand<TInt32> t = tf.reshape(tf.constant(labels), tf.constant(new int[] {batch, positions}));
      Operand<TFloat32> w = tf.reshape(tf.constant(weights), tf.constant(new int[] {batch, positions}));
      MarkedGradients.CrossEntropy ours = MarkedGradients.sparseCrossEntropy(tf, z, t);
      Operand<TFloat32> fused = tf.reshape(tf.nn.sparseSoftmaxCrossEntropyWithLogits(
          tf.reshape(z, tf.constant(new int[] {-1, classes})), tf.reshape(t, tf.constant(new int[] {-1}))).loss(),
          tf.constant(new int[] {batch, positions}));
      Operand<TFloat32> argmaxHits = tf.dtypes.cast(tf.math.equal(tf.math.argMax(z, tf.constant(-1), TInt32.class), t),
          TFloat32.class);
      Operand<TFloat32> ourLoss = tf.reduceSum(tf.math.mul(ours.loss(), w), tf.constant(new int[] {0, 1}));
      Operand<TFloat32> fusedLoss = tf.reduceSum(tf.math.mul(fused, w), tf.constant(new int[] {0, 1}));
      Output<?>[] ourGrad = g.addGradients(ourLoss.asOutput(), new Output<?>[] {z.asOutput()});
      Output<?>[] fusedGrad = g.addGradients(fusedLoss.asOutput(), new Output<?>[] {z.asOutput()});
      try (TFloat32 in = TFloat32.tensorOf(Shape.of(batch, positions, classes),
              d -> d.asRawTensor().data().asFloats().write(logits));
           Result r = s.runner().feed(z, in).fetch(ours.loss()).fetch(fused).fetch(ourGrad[0]).fetch(fusedGrad[0])
               .fetch(ours.hits()).fetch(argmaxHits).run()) {
        float[] a = floats(r.get(0));
        float[] b = floats(r.get(1));
        for (int i = 0; i < a.length; i++) {
          assertEquals(b[i], a[i], 1e-5 * Math.max(1, Math.abs(b[i])), "loss at " + i);
        }
        assertTrue(a[5] > 70, "the confident wrong row's loss is " + a[5]);
        assertArrayEquals(floats(r.get(3)), floats(r.get(2)), 1e-6f, "gradient");
        assertArrayEquals(floats(r.get(5)), floats(r.get(4)), 0f, "hits");
      }
    }
  }

  private static GraphDef productGraph(Case c, double[] yv) {
    try (Graph g = new Graph()) {
      Ops tf = Ops.create(g);
      Placeholder<TFloat64> x = tf.withName("x").placeholder(TFloat64.class, Placeholder.shape(Shape.of(c.x())));
      Operand<TFloat64> y = c.constY()
          ? tf.withName("y").constant(Shape.of(c.y()), org.tensorflow.ndarray.buffer.DataBuffers.of(yv, true, false))
          : tf.withName("y").placeholder(TFloat64.class, Placeholder.shape(Shape.of(c.y())));
      var b = tf.scope().opBuilder("BatchMatMulV2", "product");
      b.addInput(x.asOutput());
      b.addInput(y.asOutput());
      b.setAttr("adj_x", c.adjX());
      b.setAttr("adj_y", c.adjY());
      Output<TFloat64> z = b.build().output(0);
      // A weighted sum, so that every output element's gradient differs.
      Operand<TFloat64> w = tf.math.cos(tf.dtypes.cast(tf.reshape(tf.range(tf.constant(0),
          tf.size(z), tf.constant(1)), tf.shape(z)), TFloat64.class));
      tf.withName("loss").reduceSum(tf.math.mul(z, w), tf.range(tf.constant(0), tf.rank(z), tf.constant(1)));
      return g.toGraphDef();
    }
  }

  /** The product, then d/dx and d/dy of the loss, for the given graph. */
  private static List<double[]> gradients(GraphDef def, double[] xv, Case c) {
    try (Graph g = new Graph(); Session s = new Session(g)) {
      g.importGraphDef(def);
      Output<?>[] grads = g.addGradients("grad", new Output<?>[] {g.output("loss")},
          new Output<?>[] {g.output("x"), g.output("y")}, null);
      List<Tensor> feeds = new ArrayList<>();
      try {
        Session.Runner runner = s.runner();
        TFloat64 x = TFloat64.tensorOf(Shape.of(c.x()), d -> d.asRawTensor().data().asDoubles().write(xv));
        feeds.add(x);
        runner.feed("x", x);
        if (!c.constY()) {
          double[] yv = random(c.y());
          TFloat64 y = TFloat64.tensorOf(Shape.of(c.y()), d -> d.asRawTensor().data().asDoubles().write(yv));
          feeds.add(y);
          runner.feed("y", y);
        }
        runner.fetch("product").fetch(grads[0]).fetch(grads[1]);
        try (Result r = runner.run()) {
          return List.of(doubles(r.get(0)), doubles(r.get(1)), doubles(r.get(2)));
        }
      } finally {
        feeds.forEach(Tensor::close);
      }
    }
  }

  /** Values from a seed fixed by the shape, so the plain and marked runs see the same numbers. */
  private static double[] random(long[] shape) {
    long n = 1;
    for (long d : shape) {
      n *= d;
    }
    Random r = new Random(java.util.Arrays.hashCode(shape));
    double[] v = new double[(int) n];
    for (int i = 0; i < v.length; i++) {
      v[i] = r.nextGaussian();
    }
    return v;
  }

  private static double[] doubles(Tensor t) {
    double[] out = new double[(int) t.shape().size()];
    t.asRawTensor().data().asDoubles().read(out);
    return out;
  }

  private static float[] floats(Tensor t) {
    float[] out = new float[(int) t.shape().size()];
    t.asRawTensor().data().asFloats().read(out);
    return out;
  }
}
