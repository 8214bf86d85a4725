/**
 * Garbage collection (issue 12): deleting a layer row checks the images that name it as theirs
 * (`images.layer_id` references it); without an index that check scans every image per layer.
 */
export const sql = `
CREATE INDEX images_by_layer ON images (layer_id);
`;
