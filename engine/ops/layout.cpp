#include "engine/ops/layout.h"

#include <algorithm>
#include <numeric>

namespace graft::ops {

Tensor make_view(const Tensor& x, const Shape& shape, const Strides& strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = x.impl().storage;
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = offset;
  impl->dtype = x.dtype();
  return Tensor(std::move(impl));
}

Strides dense_strides_like(const Shape& shape, const Tensor& like) {
  if (static_cast<int64_t>(shape.size()) != like.dim()) return contiguous_strides(shape);
  std::vector<int> order(shape.size());
  std::iota(order.begin(), order.end(), 0);
  const Strides& ls = like.strides();
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return ls[a] > ls[b]; });
  Strides st(shape.size());
  int64_t s = 1;
  for (size_t k = order.size(); k-- > 0;) {
    st[order[k]] = s;
    s *= std::max<int64_t>(shape[order[k]], 1);
  }
  return st;
}

bool same_dense_layout(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || !a.is_dense() || !b.is_dense()) return false;
  for (int64_t d = 0; d < a.dim(); ++d)
    if (a.shape()[d] > 1 && a.strides()[d] != b.strides()[d]) return false;
  return true;
}

Tensor with_layout_of(const Tensor& g, const Tensor& ref) {
  if (same_dense_layout(g, ref)) return g;
  Tensor out = Tensor::empty_strided(ref.shape(), ref.strides(), g.dtype(), g.device());
  copy_tensor(out, g);
  return out;
}

Tensor broadcast_view(const Tensor& t, const Shape& shape, const char* op) {
  const int64_t n = static_cast<int64_t>(shape.size()), k = t.dim();
  GRAFT_CHECK(k <= n, op << ": cannot broadcast " << shape_str(t.shape()) << " to " << shape_str(shape)
                         << " (more dimensions than the target)");
  Strides st(n, 0);
  for (int64_t d = 0; d < k; ++d) {
    const int64_t td = t.shape()[d], od = shape[n - k + d];
    GRAFT_CHECK(td == od || td == 1, op << ": cannot broadcast " << shape_str(t.shape()) << " to " << shape_str(shape)
                                        << " (dimension " << d << " has size " << td << ", target " << od << ")");
    st[n - k + d] = td == 1 ? 0 : t.strides()[d];
  }
  return make_view(t, shape, st, t.offset());
}

Tensor materialize(const Tensor& src, const Strides& strides) {
  Tensor out = Tensor::empty_strided(src.shape(), strides, src.dtype(), src.device());
  copy_tensor(out, src);
  return out;
}

}  // namespace graft::ops
