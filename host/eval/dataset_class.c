/* dataset_class.c - loading one class of a dataset (dataset.h pad_dataset_class_load): its train images, its test
 * images with their defect types and ground-truth masks, for the folder layouts (mvtec, mpdd, loco, visa
 * reorganised, folder) and the VisA csv, sorted (docs/protocols.md#datasets). */
#include "dataset_internal.h"

// ----------------------------------------------------------------------------
// Class loading

typedef enum mask_style {
    MASK_SUFFIX,    // <stem>_mask.<ext> (mvtec, mpdd)
    MASK_PLAIN,     // <stem>.<ext> (visa reorganised)
    MASK_EITHER,    // <stem>_mask.<ext>, else <stem>.<ext> (folder)
    MASK_LOCO_DIRS, // <stem>/ holding one or more image files (loco)
} mask_style;

typedef struct item_vec {
    pad_test_item *v;
    int n, cap;
} item_vec;

static pad_test_item *item_push(item_vec *iv) {
    if (iv->n == iv->cap) {
        int cap = iv->cap ? 2 * iv->cap : 64;
        pad_test_item *v = realloc(iv->v, (size_t)cap * sizeof *v);
        if (!v) return NULL;
        iv->v = v;
        iv->cap = cap;
    }
    pad_test_item *it = &iv->v[iv->n++];
    memset(it, 0, sizeof *it);
    return it;
}

static void item_free(pad_test_item *it) {
    free(it->path);
    free(it->defect_type);
    for (int m = 0; m < it->n_masks; m++)
        free(it->mask_paths[m]);
    free(it->mask_paths);
}

void pad_class_data_free(pad_class_data *cls) {
    if (!cls) return;
    free(cls->name);
    free(cls->dir);
    for (int i = 0; i < cls->n_train; i++)
        free(cls->train[i]);
    free(cls->train);
    free(cls->train_dir_order);
    for (int i = 0; i < cls->n_validation; i++)
        free(cls->validation[i]);
    free(cls->validation);
    for (int i = 0; i < cls->n_test; i++)
        item_free(&cls->test[i]);
    free(cls->test);
    memset(cls, 0, sizeof *cls);
}

static int cmp_item(const void *a, const void *b) {
    const pad_test_item *x = a, *y = b;
    int c = strcmp(x->defect_type, y->defect_type);
    if (c) return c;
    c = strcmp(base_name(x->path), base_name(y->path));
    return c ? c : strcmp(x->path, y->path);
}

static pad_anomaly_kind kind_of(const char *type) {
    if (strcmp(type, "good") == 0) return PAD_ANOMALY_KIND_NONE;
    if (strcmp(type, "logical_anomalies") == 0) return PAD_ANOMALY_KIND_LOGICAL;
    if (strcmp(type, "structural_anomalies") == 0) return PAD_ANOMALY_KIND_STRUCTURAL;
    return PAD_ANOMALY_KIND_DEFECT;
}

// Moves a sorted name list into an array of paths dir/name. Frees `names`.
static pad_status names_to_paths(const char *dir, strlist *names, char ***paths, int *n) {
    *paths = NULL;
    *n = 0;
    if (names->n == 0) {
        strlist_free(names);
        return PAD_OK;
    }
    char **p = calloc((size_t)names->n, sizeof *p);
    if (!p) {
        strlist_free(names);
        return PAD_ERR_OOM;
    }
    for (int i = 0; i < names->n; i++) {
        p[i] = path_join(dir, names->v[i]);
        if (!p[i]) {
            for (int j = 0; j < i; j++)
                free(p[j]);
            free(p);
            strlist_free(names);
            return PAD_ERR_OOM;
        }
    }
    *paths = p;
    *n = names->n;
    strlist_free(names);
    return PAD_OK;
}

// Sorted image list of `dir` into cls-style arrays; optionally the readdir-order permutation.
static pad_status list_images_sorted(const char *dir, char ***paths, int *n, int **dir_order) {
    strlist names;
    PAD_TRY(list_dir(dir, LIST_IMAGES, &names));
    if (dir_order) {
        *dir_order = NULL;
        if (names.n > 0) {
            // readdir order -> sorted positions: sort a copy and look each name up
            strlist sorted = {0};
            int *ord = malloc((size_t)names.n * sizeof *ord);
            bool ok = ord != NULL;
            for (int i = 0; i < names.n && ok; i++)
                ok = strlist_push_own(&sorted, xstrdup(names.v[i]));
            if (ok) {
                strlist_sort(&sorted);
                for (int i = 0; i < names.n; i++)
                    ord[i] = strlist_find_sorted(&sorted, names.v[i]);
            }
            strlist_free(&sorted);
            if (!ok) {
                free(ord);
                strlist_free(&names);
                PAD_LOG_ERROR("%s: out of memory", dir);
                return PAD_ERR_OOM;
            }
            *dir_order = ord;
        }
    }
    strlist_sort(&names);
    pad_status st = names_to_paths(dir, &names, paths, n);
    if (st != PAD_OK) {
        if (dir_order) {
            free(*dir_order);
            *dir_order = NULL;
        }
        PAD_LOG_ERROR("%s: out of memory", dir);
    }
    return st;
}

// Finds the mask file(s) of test image `name` of type `type` under gt_dir (the class's ground_truth/<type>).
// gt_names: the sorted image names of gt_dir (NULL when the folder is missing). Fills it->mask_paths.
// Returns PAD_OK with n_masks == 0 when nothing matches (the caller decides whether that is an error).
static pad_status find_masks(const char *gt_dir, const strlist *gt_names, const char *name, mask_style style,
                             pad_test_item *it) {
    size_t sl = stem_len(name);
    if (style == MASK_LOCO_DIRS) {
        char stem[1024];
        if (sl >= sizeof stem) return PAD_OK;
        memcpy(stem, name, sl);
        stem[sl] = 0;
        char *mdir = path_join(gt_dir, stem);
        if (!mdir) return PAD_ERR_OOM;
        if (!is_dir(mdir)) {
            free(mdir);
            return PAD_OK;
        }
        strlist names;
        pad_status st = list_dir(mdir, LIST_IMAGES, &names);
        if (st == PAD_OK) {
            strlist_sort(&names);
            st = names_to_paths(mdir, &names, &it->mask_paths, &it->n_masks);
        }
        free(mdir);
        return st;
    }
    if (!gt_names) return PAD_OK;
    // candidates in preference order: "<stem>_mask", then "<stem>"
    for (int pass = 0; pass < 2; pass++) {
        bool suffix = pass == 0;
        if (suffix && style == MASK_PLAIN) continue;
        if (!suffix && style == MASK_SUFFIX) continue;
        for (int i = 0; i < gt_names->n; i++) {
            const char *g = gt_names->v[i];
            size_t gl = stem_len(g);
            bool match = suffix ? (gl == sl + 5 && strncmp(g, name, sl) == 0 && strncmp(g + sl, "_mask", 5) == 0)
                                : (gl == sl && strncmp(g, name, sl) == 0);
            if (!match) continue;
            it->mask_paths = malloc(sizeof *it->mask_paths);
            if (!it->mask_paths) return PAD_ERR_OOM;
            it->mask_paths[0] = path_join(gt_dir, g);
            if (!it->mask_paths[0]) return PAD_ERR_OOM;
            it->n_masks = 1;
            return PAD_OK;
        }
    }
    return PAD_OK;
}

// The mask path we expected, for error messages.
static void expected_mask(char *buf, size_t cap, const char *gt_dir, const char *name, mask_style style) {
    int sl = (int)stem_len(name);
    switch (style) {
    case MASK_SUFFIX:
        snprintf(buf, cap, "%s/%.*s_mask.png", gt_dir, sl, name);
        break;
    case MASK_PLAIN:
        snprintf(buf, cap, "%s/%.*s.png", gt_dir, sl, name);
        break;
    case MASK_EITHER:
        snprintf(buf, cap, "%s/%.*s_mask.png or %.*s.png", gt_dir, sl, name, sl, name);
        break;
    case MASK_LOCO_DIRS:
        snprintf(buf, cap, "a folder %s/%.*s/ with at least one mask image", gt_dir, sl, name);
        break;
    }
}

static pad_status fail_oom(const char *path) {
    PAD_LOG_ERROR("%s: out of memory", path);
    return PAD_ERR_OOM;
}

// Lists the test/<type> folders of a class folder (mvtec, mpdd, loco, visa reorganised, folder).
static pad_status load_test_folders(const char *cdir, mask_style style, bool masks_required, item_vec *items) {
    char *tdir = path_join(cdir, "test");
    char *gdir = path_join(cdir, "ground_truth");
    if (!tdir || !gdir) {
        free(tdir);
        free(gdir);
        return fail_oom(cdir);
    }
    pad_status st = PAD_OK;
    strlist types = {0};
    if (!is_dir(tdir)) {
        PAD_LOG_ERROR("%s: missing test folder", tdir);
        st = PAD_ERR_INVALID_ARG;
        goto done;
    }
    PAD_TRY_GOTO(st, list_dir(tdir, LIST_DIRS, &types), done);
    strlist_sort(&types);
    for (int t = 0; t < types.n && st == PAD_OK; t++) {
        const char *type = types.v[t];
        char *idir = path_join(tdir, type);
        char *tgt = path_join(gdir, type);
        strlist imgs = {0}, gt_names = {0};
        bool have_gt = false;
        if (!idir || !tgt) {
            st = fail_oom(cdir);
            goto type_done;
        }
        PAD_TRY_GOTO(st, list_dir(idir, LIST_IMAGES, &imgs), type_done);
        strlist_sort(&imgs);
        pad_anomaly_kind kind = kind_of(type);
        if (style != MASK_LOCO_DIRS && is_dir(tgt)) { // normal types too (ground_truth/good is unusual)
            PAD_TRY_GOTO(st, list_dir(tgt, LIST_IMAGES, &gt_names), type_done);
            strlist_sort(&gt_names);
            have_gt = true;
        }
        for (int i = 0; i < imgs.n; i++) {
            pad_test_item *it = item_push(items);
            if (!it) {
                st = fail_oom(idir);
                goto type_done;
            }
            it->path = path_join(idir, imgs.v[i]);
            it->defect_type = xstrdup(type);
            it->kind = kind;
            it->label = kind != PAD_ANOMALY_KIND_NONE;
            if (!it->path || !it->defect_type) {
                st = fail_oom(idir);
                goto type_done;
            }
            // normal images too: a mask of one is kept, and the run reports it when it marks pixels
            st = find_masks(tgt, have_gt ? &gt_names : NULL, imgs.v[i], style, it);
            if (st != PAD_OK) {
                fail_oom(tgt);
                goto type_done;
            }
            if (!it->label) continue;
            if (it->n_masks == 0 && masks_required) {
                char want[2048];
                expected_mask(want, sizeof want, tgt, imgs.v[i], style);
                PAD_LOG_ERROR("%s: anomalous test image without its ground-truth mask (expected %s)", it->path, want);
                st = PAD_ERR_INVALID_ARG;
                goto type_done;
            }
        }
    type_done:
        strlist_free(&imgs);
        strlist_free(&gt_names);
        free(idir);
        free(tgt);
    }
done:
    strlist_free(&types);
    free(tdir);
    free(gdir);
    return st;
}

static pad_status load_class_folder(const pad_dataset *ds, const char *name, pad_class_data *cls) {
    char *cdir = ds->single ? xstrdup(ds->root) : path_join(ds->base, name);
    if (!cdir) return fail_oom(ds->root);
    cls->dir = cdir;
    if (!is_dir(cdir)) {
        PAD_LOG_ERROR("%s: class folder missing", cdir);
        return PAD_ERR_INVALID_ARG;
    }
    // train/good
    char *tr = path_join(cdir, "train/good");
    if (!tr) return fail_oom(cdir);
    pad_status st = PAD_OK;
    if (!is_dir(tr)) {
        PAD_LOG_ERROR("%s: missing train/good folder", tr);
        st = PAD_ERR_INVALID_ARG;
    } else {
        st = list_images_sorted(tr, &cls->train, &cls->n_train, &cls->train_dir_order);
        if (st == PAD_OK && cls->n_train == 0) {
            PAD_LOG_ERROR("%s: no train images (.png, .jpg, .jpeg or .bmp)", tr);
            st = PAD_ERR_INVALID_ARG;
        }
    }
    free(tr);
    if (st != PAD_OK) return st;
    // validation/good (LOCO)
    if (ds->format == PAD_DATASET_FORMAT_LOCO) {
        char *vd = path_join(cdir, "validation/good");
        if (!vd) return fail_oom(cdir);
        if (is_dir(vd)) st = list_images_sorted(vd, &cls->validation, &cls->n_validation, NULL);
        free(vd);
        if (st != PAD_OK) return st;
    }
    // test/<type> with masks
    mask_style style = MASK_SUFFIX;
    bool required = true;
    switch (ds->format) {
    case PAD_DATASET_FORMAT_MVTEC:
    case PAD_DATASET_FORMAT_MPDD:
        style = MASK_SUFFIX;
        break;
    case PAD_DATASET_FORMAT_VISA:
        style = MASK_PLAIN;
        break;
    case PAD_DATASET_FORMAT_LOCO:
        style = MASK_LOCO_DIRS;
        break;
    case PAD_DATASET_FORMAT_FOLDER: {
        style = MASK_EITHER;
        char *gd = path_join(cdir, "ground_truth");
        if (!gd) return fail_oom(cdir);
        required = is_dir(gd);
        free(gd);
        break;
    }
    }
    item_vec items = {0};
    st = load_test_folders(cdir, style, required, &items);
    cls->test = items.v;
    cls->n_test = items.n;
    if (st != PAD_OK) return st;
    if (cls->n_test == 0) {
        PAD_LOG_ERROR("%s/test: no test images (.png, .jpg, .jpeg or .bmp) in its sub-folders", cdir);
        return PAD_ERR_INVALID_ARG;
    }
    return PAD_OK;
}

// VisA official layout: rows of the csv for one class.
static pad_status load_class_csv(const pad_dataset *ds, const char *name, pad_class_data *cls) {
    cls->dir = xstrdup(ds->root);
    if (!cls->dir) return fail_oom(ds->root);
    strlist train = {0};
    item_vec items = {0};
    pad_status st = PAD_OK;
    for (int r = 0; r < ds->n_rows; r++) {
        const csv_row *row = &ds->rows[r];
        if (strcmp(row->object, name) != 0) continue;
        if (!is_file(row->image)) {
            PAD_LOG_ERROR("%s: image listed in %s:%d not found", row->image, ds->csv_path, row->line);
            st = PAD_ERR_IO;
            goto done;
        }
        if (row->train) {
            if (!row->normal) {
                PAD_LOG_WARN("%s:%d: anomalous train image %s skipped (train images must be normal)", ds->csv_path,
                             row->line, row->image);
                continue;
            }
            if (!strlist_push_own(&train, xstrdup(row->image))) {
                st = fail_oom(ds->csv_path);
                goto done;
            }
            continue;
        }
        pad_test_item *it = item_push(&items);
        if (!it) {
            st = fail_oom(ds->csv_path);
            goto done;
        }
        it->path = xstrdup(row->image);
        it->label = !row->normal;
        it->defect_type = xstrdup(row->normal ? "good" : "bad");
        it->kind = row->normal ? PAD_ANOMALY_KIND_NONE : PAD_ANOMALY_KIND_DEFECT;
        if (!it->path || !it->defect_type) {
            st = fail_oom(ds->csv_path);
            goto done;
        }
        if (row->normal && row->mask && is_file(row->mask)) { // kept: the run reports it when it marks pixels
            it->mask_paths = malloc(sizeof *it->mask_paths);
            if (!it->mask_paths || !(it->mask_paths[0] = xstrdup(row->mask))) {
                st = fail_oom(ds->csv_path);
                goto done;
            }
            it->n_masks = 1;
        } else if (!row->normal) {
            if (!is_file(row->mask)) {
                PAD_LOG_ERROR("%s: anomalous test image without its ground-truth mask (expected %s, from %s:%d)",
                              row->image, row->mask, ds->csv_path, row->line);
                st = PAD_ERR_INVALID_ARG;
                goto done;
            }
            it->mask_paths = malloc(sizeof *it->mask_paths);
            if (!it->mask_paths || !(it->mask_paths[0] = xstrdup(row->mask))) {
                st = fail_oom(ds->csv_path);
                goto done;
            }
            it->n_masks = 1;
        }
    }
    if (train.n == 0) {
        PAD_LOG_ERROR("%s: no train images for class '%s' (rows with split 'train' and label 'normal')", ds->csv_path,
                      name);
        st = PAD_ERR_INVALID_ARG;
        goto done;
    }
    if (items.n == 0) {
        PAD_LOG_ERROR("%s: no test images for class '%s' (rows with split 'test')", ds->csv_path, name);
        st = PAD_ERR_INVALID_ARG;
        goto done;
    }
    strlist_sort(&train);
    // directory order of the train files, folder by folder (folders in sorted order): the `glob` interpretation
    cls->train_dir_order = malloc((size_t)train.n * sizeof *cls->train_dir_order);
    bool *used = calloc((size_t)train.n, sizeof *used);
    if (!cls->train_dir_order || !used) {
        free(used);
        st = fail_oom(ds->csv_path);
        goto done;
    }
    int k = 0;
    char *prev_dir = NULL;
    for (int i = 0; i < train.n && st == PAD_OK; i++) {
        const char *p = train.v[i];
        size_t dl = (size_t)(base_name(p) - p);
        if (prev_dir && strlen(prev_dir) == dl && strncmp(prev_dir, p, dl) == 0) continue;
        free(prev_dir);
        prev_dir = malloc(dl + 1);
        if (!prev_dir) {
            st = fail_oom(ds->csv_path);
            break;
        }
        memcpy(prev_dir, p, dl);
        prev_dir[dl] = 0;
        strlist names;
        st = list_dir(dl ? prev_dir : ".", LIST_IMAGES, &names);
        for (int j = 0; j < names.n && st == PAD_OK; j++) {
            char *full = dl ? path_join(prev_dir, names.v[j]) : xstrdup(names.v[j]);
            if (!full) {
                st = fail_oom(ds->csv_path);
                break;
            }
            // path_join of "dir/" + name == the csv path when the csv path has no "//" or "./" oddities
            int idx = strlist_find_sorted(&train, full);
            free(full);
            if (idx >= 0 && !used[idx]) {
                used[idx] = true;
                cls->train_dir_order[k++] = idx;
            }
        }
        strlist_free(&names);
    }
    free(prev_dir);
    for (int i = 0; i < train.n && st == PAD_OK; i++) // paths the listings did not reproduce byte for byte
        if (!used[i]) cls->train_dir_order[k++] = i;
    free(used);
    if (st != PAD_OK) goto done;
    cls->train = train.v;
    cls->n_train = train.n;
    train.v = NULL;
    train.n = train.cap = 0;
done:
    strlist_free(&train);
    cls->test = items.v;
    cls->n_test = items.n;
    return st;
}

pad_status pad_dataset_class_load(const pad_dataset *ds, const char *name, pad_class_data *out) {
    memset(out, 0, sizeof *out);
    if (!name || pad_dataset_find_class(ds, name) < 0) {
        char names[1200] = "";
        join_names(names, sizeof names, (const char *const *)ds->classes.v, ds->classes.n);
        PAD_LOG_ERROR("%s: unknown %s class '%s' (classes present: %s)", ds->root, pad_dataset_format_str(ds->format),
                      name ? name : "(null)", names);
        return PAD_ERR_INVALID_ARG;
    }
    out->name = xstrdup(name);
    if (!out->name) return fail_oom(ds->root);
    pad_status st = ds->csv_path ? load_class_csv(ds, name, out) : load_class_folder(ds, name, out);
    if (st != PAD_OK) {
        pad_class_data_free(out);
        return st;
    }
    qsort(out->test, (size_t)out->n_test, sizeof *out->test, cmp_item);
    out->has_masks = true;
    for (int i = 0; i < out->n_test; i++) {
        out->n_test_anomalous += out->test[i].label;
        if (out->test[i].label && out->test[i].n_masks == 0) out->has_masks = false;
    }
    return PAD_OK;
}
