/** What a caller may do on a path. `super` means every permission. */
export const PERMISSIONS = ['read', 'write', 'list', 'delete', 'super'] as const;
export type Permission = (typeof PERMISSIONS)[number];
