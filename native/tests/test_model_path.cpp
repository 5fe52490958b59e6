// Engine::load takes a model folder or a .gguf file (reliability issue, cause 15). A path
// that is neither used to be read as a folder ("cannot open .../model.gguf/config.json: Not a
// directory"); now the message says what the file is and what to give instead.
#include <string>

#include "engine_test_models.h"
#include "harness.h"
#include "safetensors_writer.h"
#include "tidal/engine.h"
#include "tidal/error.h"

using tidal_test::TempDir;

namespace {

std::string load_error(const std::string& path) {
  try {
    tidal::Engine::load(path, tidal_test::test_engine_options());
    return "";
  } catch (const tidal::ModelError& e) {
    return e.what();
  }
}

}  // namespace

TIDAL_TEST(cause15_a_file_that_is_not_gguf_is_not_read_as_a_folder) {
  TempDir dir;
  tidal_test::write_text(dir.file("model.gguf"), "hello, not a model");
  CHECK_CONTAINS(load_error(dir.file("model.gguf")),
                 "'" + dir.file("model.gguf") +
                     "' is not a GGUF file (bad magic: expected the magic \"GGUF\", found "
                     "\"hell\") nor a model folder");
  tidal_test::write_text(dir.file("empty.gguf"), "");
  CHECK_CONTAINS(load_error(dir.file("empty.gguf")), "is not a GGUF file (it is 0 bytes, too short for the magic)");
  // A safetensors file given where the folder belongs.
  tidal_test::write_safetensors(dir.file("model.safetensors"), {{"x", "F32", {1}, tidal_test::f32_bytes({1})}});
  CHECK_CONTAINS(load_error(dir.file("model.safetensors")), "this looks like a safetensors file");
  CHECK_CONTAINS(load_error(dir.file("missing")), "model path '" + dir.file("missing") + "' does not exist");
}
